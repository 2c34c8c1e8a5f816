package loopport

import (
	"fmt"
	"net"
	"testing"
)

// TestBelowEphemeral: the ports picked lie below the ephemeral range (so
// no outgoing connection can take them between the pick and the bind)
// and are free: Listen's is held, Range's can each be listened on.
func TestBelowEphemeral(t *testing.T) {
	hi := ephemeralFloor()
	if hi <= Lowest+8 {
		t.Skipf("the ephemeral range starts at %d", hi)
	}
	seen := map[int]bool{}
	for range 20 {
		ln, err := Listen()
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		p := ln.Addr().(*net.TCPAddr).Port
		if p < Lowest || p >= hi || seen[p] {
			t.Fatalf("port %d: outside [%d, %d) or handed out twice while held", p, Lowest, hi)
		}
		seen[p] = true
	}
	base, err := Range(8)
	if err != nil {
		t.Fatal(err)
	}
	if base < Lowest || base+8 > hi {
		t.Fatalf("range %d..%d outside [%d, %d)", base, base+7, Lowest, hi)
	}
	for p := base; p < base+8; p++ {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			t.Fatalf("port %d of the range: %v", p, err)
		}
		ln.Close()
	}
	if _, err := Range(0); err == nil {
		t.Error("a range of 0 ports")
	}
}
