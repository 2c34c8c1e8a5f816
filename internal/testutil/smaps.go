package testutil

import (
	"bufio"
	"fmt"
	"os"
	"testing"
)

// SmapsKB returns field (such as "Rss" or "AnonHugePages") of the memory
// mapping holding address a, in KiB, from /proc/self/smaps; the test is
// skipped where there is no such file.
func SmapsKB(tb testing.TB, a uintptr, field string) int {
	tb.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		tb.Skipf("no /proc/self/smaps: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(sc.Text(), "%x-%x ", &lo, &hi); n == 2 {
			in = lo <= a && a < hi
			continue
		}
		var kb int
		if n, _ := fmt.Sscanf(sc.Text(), field+": %d kB", &kb); in && n == 1 {
			return kb
		}
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	tb.Fatalf("no %s of a mapping holding %#x in /proc/self/smaps", field, a)
	return 0
}
