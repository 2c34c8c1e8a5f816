package hugepage

import (
	"os"
	"strings"
	"testing"
	"unsafe"

	"github.com/verdictnet/verdict/internal/testutil"
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
	if kb := testutil.SmapsKB(t, uintptr(unsafe.Pointer(&b[n/2])), "AnonHugePages"); kb < 3*Size/1024 {
		t.Fatalf("%d KiB of the mapping holding 8 MiB from Floats in huge pages, want at least %d", kb, 3*Size/1024)
	}
}
