package multigw_test

import (
	"encoding/json"
	"fmt"
	"net/netip"

	"github.com/verdictnet/verdict/internal/gateway"
	"github.com/verdictnet/verdict/internal/multigw"
)

// A worker's registration file gives the gateway its OpenAI endpoint; one
// with markup in its name is refused.
func ExampleParseRegistration() {
	reg, _ := gateway.WorkerRegistration{Name: "worker 3", Base: "https://w3.example.net", ChainID: "verdict-1", AgentID: 3}.Build()
	b, _ := json.Marshal(reg)
	r, err := multigw.ParseRegistration(b, "verdict-1", 3)
	fmt.Println(r.Endpoint, err)

	reg.Name = "<script>x</script>"
	b, _ = json.Marshal(reg)
	_, err = multigw.ParseRegistration(b, "verdict-1", 3)
	fmt.Println(err)
	// Output:
	// https://w3.example.net/v1 <nil>
	// registration file refused: name: "<script>x</script>" holds markup
}

// The gateway connects to public addresses only, unless its NetPolicy
// allows others: an IPv4-mapped or 6to4 address is what it holds.
func ExampleNetPolicy_Check() {
	for _, s := range []string{"93.184.215.14", "169.254.169.254", "::ffff:127.0.0.1", "2002:a00:1::", "10.1.2.3"} {
		ip := netip.MustParseAddr(s)
		fmt.Println(s, multigw.ClassifyAddr(ip), multigw.NetPolicy{}.Check(ip) == nil)
	}
	vpc := multigw.NetPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}}
	fmt.Println(vpc.Check(netip.MustParseAddr("10.1.2.3")))
	fmt.Println(vpc.Check(netip.MustParseAddr("10.2.0.1")))
	// Output:
	// 93.184.215.14 public true
	// 169.254.169.254 link-local false
	// ::ffff:127.0.0.1 loopback false
	// 2002:a00:1:: private false
	// 10.1.2.3 private false
	// <nil>
	// 10.2.0.1 is a private address: the gateway connects to public addresses only (--allow-private-workers, --allow-worker-net)
}
