//go:build linux

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// releaseStartPages takes out of the process's resident set the pages of
// the executable that it mapped in before any command ran: package
// initialisation of the whole binary (the ledger, protobuf and HTTP
// dependencies included) touches pages of its text and read-only data all
// over its 30 MB, and the kernel maps 64 KiB around each such fault; a
// command that then loads a model runs a small part of that code
// (docs/benchmarks.md, peak resident memory: 20.8 MiB of the binary's
// pages at start, of which the model path touches again about 3).
//
// Only the executable's private mappings that are not writable and hold no
// anonymous (copied-on-write) page are advised, with MADV_DONTNEED: their
// pages are the file's, unchanged (the kernel refuses to write to a running
// executable), and a later access maps them again from the page cache, as
// on the first access. Nothing the program computes can tell the
// difference. It returns the bytes that were resident in those mappings.
func releaseStartPages() (int64, error) {
	exe, err := os.Stat("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	st, ok := exe.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("stat /proc/self/exe: no inode")
	}
	maps, err := readSmaps("/proc/self/smaps")
	if err != nil {
		return 0, err
	}
	var released int64
	for _, m := range maps {
		if m.inode != st.Ino || m.perms[1] == 'w' || m.perms[3] != 'p' || m.anon != 0 || m.rss == 0 {
			continue
		}
		_, _, e := syscall.Syscall(syscall.SYS_MADVISE, uintptr(m.start), uintptr(m.end-m.start), syscall.MADV_DONTNEED)
		if e != 0 {
			return released, fmt.Errorf("madvise %x-%x: %w", m.start, m.end, e)
		}
		released += m.rss
	}
	return released, nil
}

// smapsEntry is one mapping of /proc/PID/smaps.
type smapsEntry struct {
	start, end uint64
	perms      string // "r-xp"
	inode      uint64
	rss, anon  int64 // bytes
}

// readSmaps reads the mappings of an smaps file.
func readSmaps(path string) ([]smapsEntry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseSmaps(data)
}

// parseSmaps parses the text of /proc/PID/smaps: a header line per mapping
// ("start-end perms offset dev inode [path]") followed by "Name: N kB"
// lines, of which it keeps Rss and Anonymous.
func parseSmaps(data []byte) ([]smapsEntry, error) {
	var out []smapsEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if lo, hi, ok := strings.Cut(f[0], "-"); ok && !strings.HasSuffix(f[0], ":") {
			if len(f) < 5 || len(f[1]) != 4 {
				return nil, fmt.Errorf("smaps: bad mapping line %q", line)
			}
			var e smapsEntry
			var err1, err2, err3 error
			e.start, err1 = strconv.ParseUint(lo, 16, 64)
			e.end, err2 = strconv.ParseUint(hi, 16, 64)
			e.inode, err3 = strconv.ParseUint(f[4], 10, 64)
			if err1 != nil || err2 != nil || err3 != nil || e.end < e.start {
				return nil, fmt.Errorf("smaps: bad mapping line %q", line)
			}
			e.perms = f[1]
			out = append(out, e)
			continue
		}
		if len(out) == 0 || len(f) != 3 || f[2] != "kB" {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("smaps: bad line %q", line)
		}
		switch f[0] {
		case "Rss:":
			out[len(out)-1].rss = n << 10
		case "Anonymous:":
			out[len(out)-1].anon = n << 10
		}
	}
	return out, sc.Err()
}
