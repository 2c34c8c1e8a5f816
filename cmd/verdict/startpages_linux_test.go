//go:build linux

package main

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseSmaps(t *testing.T) {
	const sample = `00400000-011e6000 r-xp 00000000 fd:01 1234                               /usr/bin/verdict
Size:              14228 kB
Rss:                8192 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me dw
02184000-0221b000 rw-p 01d84000 fd:01 1234                               /usr/bin/verdict
Rss:                 100 kB
Anonymous:            60 kB
7ffd1a000000-7ffd1a021000 rw-p 00000000 00:00 0                          [stack]
Rss:                  12 kB
Anonymous:            12 kB
Private_Hugetlb:       0 kB
`
	got, err := parseSmaps([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	want := []smapsEntry{
		{start: 0x400000, end: 0x11e6000, perms: "r-xp", inode: 1234, rss: 8192 << 10},
		{start: 0x2184000, end: 0x221b000, perms: "rw-p", inode: 1234, rss: 100 << 10, anon: 60 << 10},
		{start: 0x7ffd1a000000, end: 0x7ffd1a021000, perms: "rw-p", rss: 12 << 10, anon: 12 << 10},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseSmaps = %+v, want %+v", got, want)
	}
	for _, bad := range []string{
		"zz-11 r-xp 0 fd:01 1 /x\n",
		"1000-2000 r-xp 0 fd:01\n",
		"2000-1000 r-xp 0 fd:01 1 /x\n",
		"1000-2000 r-xp 0 fd:01 x /x\n",
		"1000-2000 r-xp 0 fd:01 1 /x\nRss: many kB\n",
	} {
		if _, err := parseSmaps([]byte(bad)); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("parseSmaps(%q) = %v, want a one-line error", bad, err)
		}
	}
}

func TestReleaseStartPages(t *testing.T) {
	released, err := releaseStartPages()
	if err != nil {
		t.Fatal(err)
	}
	if released <= 0 {
		t.Errorf("released %d bytes of the test binary's pages, want some", released)
	}
	// The code and data dropped are mapped again from the file when used:
	// a second call finds pages to release again, and everything in
	// between ran.
	maps, err := readSmaps("/proc/self/smaps")
	if err != nil || len(maps) == 0 {
		t.Fatalf("smaps after release: %d mappings, %v", len(maps), err)
	}
	if again, err := releaseStartPages(); err != nil || again <= 0 {
		t.Errorf("second release: %d bytes, %v", again, err)
	}
}
