package ledger

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// FuzzQueryState: no query path or data a node is sent makes QueryState
// panic or change the state; it answers JSON, or an error that is
// ErrInvalid or ErrNotFound on one line.
func FuzzQueryState(f *testing.F) {
	h := fuzzState(f)
	alice, bob := testAddr("alice").String(), testAddr("bob").String()
	zero := strings.Repeat("0", 64)
	for _, s := range []struct{ path, data string }{
		{"chain", ""}, {"params", ""}, {"totals", ""}, {"validators", ""},
		{"account/" + alice, ""}, {"stake/" + alice, ""}, {"validator/" + alice, ""},
		{"validatorRequests/" + alice, `{"offset":1,"limit":2}`},
		{"model/" + testModel.String(), ""}, {"agent/1", ""}, {"agent/1/metadata/agentWallet", ""},
		{"agent/1/metadata/k", ""}, {"agent/18446744073709551615/metadata/agentWallet", ""},
		{"feedback/1/" + bob + "/1", ""}, {"responseCount/1/" + bob + "/1", ""}, {"lastIndex/1/" + bob, ""},
		{"clients/1", `{"offset":18446744073709551615}`}, {"agentValidations/1", `{"limit":0}`},
		{"summary", `{"agentId":1}`}, {"summary", `{"agentId":1,"clientAddresses":["` + bob + `"],"tag1":"a"}`},
		{"validationSummary", `{"agentId":1,"validatorAddresses":[]}`}, {"summary", `{"agentId":1} {}`},
		{"validation/" + Hash{1}.String(), ""}, {"escrow/" + zero, ""}, {"receipt/" + zero, ""},
		{"receiptData/" + zero, ""}, {"audit/" + zero, ""}, {"dispute/" + zero, ""},
		{"", ""}, {"/", ""}, {"account/\n", ""}, {"agent/1/x/y", ""},
	} {
		f.Add(s.path, []byte(s.data))
	}
	root := h.l.AppHash()
	st := h.l.Store()
	f.Fuzz(func(t *testing.T, path string, data []byte) {
		v, err := QueryState(st, path, data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrNotFound) {
				t.Fatalf("error %q is neither invalid nor not found", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		if !json.Valid(v) {
			t.Fatalf("answer %q is not JSON", v)
		}
		if h.l.AppHash() != root {
			t.Fatal("a query changed the state")
		}
	})
}
