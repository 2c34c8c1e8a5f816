package hugepage

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"
	"unsafe"
)

// TestBackedByHugePages touches memory from Floats and reads from
// /proc/self/smaps that huge pages back it, wherever the system allows
// them on request (transparent_hugepage "always" or "madvise", and a
// defrag setting that lets a fault on advised memory compact for one).
func TestBackedByHugePages(t *testing.T) {
	enabled, err1 := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	defrag, err2 := os.ReadFile("/sys/kernel/mm/transparent_hugepage/defrag")
	if err1 != nil || err2 != nil {
		t.Skip("no transparent huge pages here")
	}
	if !strings.Contains(string(enabled), "[always]") && !strings.Contains(string(enabled), "[madvise]") {
		t.Skipf("transparent huge pages are off: %s", strings.TrimSpace(string(enabled)))
	}
	if strings.Contains(string(defrag), "[never]") || strings.Contains(string(defrag), "[defer]") {
		t.Skipf("faults do not compact for a huge page: defrag %s", strings.TrimSpace(string(defrag)))
	}
	const n = 4 * Size / 4 // 8 MiB: 3 or 4 whole huge pages inside
	b := Floats(n)
	for i := 0; i < n; i += 1024 {
		b[i] = 1
	}
	kb, err := anonHugeKB(uintptr(unsafe.Pointer(&b[n/2])))
	if err != nil {
		t.Fatal(err)
	}
	if kb < 3*Size/1024 {
		t.Fatalf("%d KiB of the mapping holding 8 MiB from Floats in huge pages, want at least %d", kb, 3*Size/1024)
	}
}

// anonHugeKB returns the AnonHugePages of the mapping holding address a.
func anonHugeKB(a uintptr) (int, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		line := sc.Text()
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(line, "%x-%x ", &lo, &hi); n == 2 {
			in = lo <= a && a < hi
			continue
		}
		var kb int
		if in {
			if n, _ := fmt.Sscanf(line, "AnonHugePages: %d kB", &kb); n == 1 {
				return kb, nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no mapping holds %#x in /proc/self/smaps", a)
}
