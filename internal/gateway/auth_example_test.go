package gateway_test

import (
	"fmt"
	"net/http/httptest"

	"github.com/verdictnet/verdict/internal/gateway"
)

// StaticKeys maps API keys to accounts; keys are compared in constant time
// and a wrong scheme is named.
func ExampleStaticKeys() {
	keys := gateway.StaticKeys{"sk-alice": "alice", "sk-bob": "bob"}
	for _, h := range []string{"Bearer sk-bob", "Bearer sk-eve", "Basic c2stYm9i"} {
		r := httptest.NewRequest("POST", "/v1/chat/completions", nil)
		r.Header.Set("Authorization", h)
		acct, err := keys.Authenticate(r)
		fmt.Printf("%q %v\n", acct, err)
	}
	// Output:
	// "bob" <nil>
	// "" incorrect API key provided
	// "" HTTP Basic authentication is not supported: send the API key as Authorization: Bearer <key>
}
