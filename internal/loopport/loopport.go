package loopport

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
)

// Bounds of the ports picked: from Lowest up to the start of the system's
// ephemeral range (on Linux net.ipv4.ip_local_port_range, else IANA's
// 49152).
const (
	Lowest       = 10000
	ianaDynamics = 49152
)

// ephemeralFloor returns the first port of the system's ephemeral range.
func ephemeralFloor() int {
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := bytes.Fields(b); len(f) == 2 {
			if n, err := strconv.Atoi(string(f[0])); err == nil && n > 0 && n <= 65535 {
				return n
			}
		}
	}
	return ianaDynamics
}

// tries bounds the random picks before Listen and Range fall back to the
// system's choice.
const tries = 200

// Listen returns a listener on a loopback port below the ephemeral range,
// or, when none is found there (the range starting too low, every pick
// taken), on a port the system picks. Close it just before the server
// that is to use the port binds it.
func Listen() (net.Listener, error) {
	if hi := ephemeralFloor(); hi > Lowest {
		for range tries {
			if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", Lowest+rand.IntN(hi-Lowest))); err == nil {
				return ln, nil
			}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("loopport: %w", err)
	}
	return ln, nil
}

// Range returns a port p such that p, ..., p+n-1 are free on loopback,
// all below the ephemeral range where it starts above Lowest+n.
func Range(n int) (int, error) {
	if n < 1 || n > 1000 {
		return 0, fmt.Errorf("loopport: a range of %d ports", n)
	}
	hi := ephemeralFloor()
	for range tries {
		var base int
		if hi-n > Lowest {
			base = Lowest + rand.IntN(hi-n-Lowest)
		} else {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return 0, fmt.Errorf("loopport: %w", err)
			}
			base = ln.Addr().(*net.TCPAddr).Port
			ln.Close()
			if base+n > 65536 {
				continue
			}
		}
		if free(base, n) {
			return base, nil
		}
	}
	return 0, errors.New("loopport: no range of free ports found")
}

// free reports whether ports base..base+n-1 can be listened on.
func free(base, n int) bool {
	var held []net.Listener
	defer func() {
		for _, ln := range held {
			ln.Close()
		}
	}()
	for p := base; p < base+n; p++ {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			return false
		}
		held = append(held, ln)
	}
	return true
}
