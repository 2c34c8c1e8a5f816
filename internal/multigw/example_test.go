package multigw_test

import (
	"encoding/json"
	"fmt"

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
