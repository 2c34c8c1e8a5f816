package gateway

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/verdictnet/verdict/internal/inference"
	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/ledger"
)

func addr(b byte) ledger.Address { return ledger.Address{b} }

// TestRank orders candidates by the rule of Candidate.Score: more stake
// first, a slash weighs like ten failures, price divides, jailed and
// under-staked workers are left out, and ties go to the lower address.
func TestRank(t *testing.T) {
	for _, c := range []struct {
		name  string
		cands []Candidate
		want  []byte // addresses' first bytes, best first
	}{
		{"stake", []Candidate{{Address: addr(1), Stake: 1000}, {Address: addr(2), Stake: 3000}}, []byte{2, 1}},
		{"price", []Candidate{{Address: addr(1), Stake: 2000, Price: 4}, {Address: addr(2), Stake: 1000, Price: 1}}, []byte{2, 1}},
		// 3000 stake, 9 final, 1 slash: 3000*10/20 = 1500 < 2000.
		{"slashed", []Candidate{{Address: addr(1), Stake: 3000, Final: 9, Slashed: 1}, {Address: addr(2), Stake: 2000}}, []byte{2, 1}},
		{"record", []Candidate{{Address: addr(1), Stake: 1000, Final: 50}, {Address: addr(2), Stake: 1000, Final: 50, Slashed: 1}}, []byte{1, 2}},
		{"jailed", []Candidate{{Address: addr(1), Stake: 9000, Jailed: true}, {Address: addr(2), Stake: 1000}}, []byte{2}},
		{"min stake", []Candidate{{Address: addr(1), Stake: 999}, {Address: addr(2), Stake: 1000}}, []byte{2}},
		{"tie", []Candidate{{Address: addr(3), Stake: 1000}, {Address: addr(2), Stake: 1000}}, []byte{2, 3}},
		{"none", []Candidate{{Address: addr(1), Stake: 5, Jailed: true}}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := Rank(c.cands, 1000)
			var ids []byte
			for _, g := range got {
				ids = append(ids, g.Address[0])
			}
			if string(ids) != string(c.want) {
				t.Fatalf("order %v, want %v", ids, c.want)
			}
		})
	}
}

// TestPool routes to the eligible worker and refuses with ErrNoWorker when
// every worker is jailed; unknown models stay unknown.
func TestPool(t *testing.T) {
	w := testWorker(t)
	p := NewPool(nil, 1000, Candidate{Backend: w, Address: addr(1), Stake: 1000})
	req := inference.Request{Model: "stories260K", Tokens: []int{1, 400}, MaxTokens: 2}
	if _, err := p.Generate(context.Background(), req, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Generate(context.Background(), inference.Request{Model: "nope", Tokens: []int{1}}, nil); !errors.Is(err, inference.ErrUnknownModel) {
		t.Fatalf("unknown model: %v", err)
	}
	p.cands[0].Jailed = true
	_, err := p.Generate(context.Background(), req, nil)
	if !errors.Is(err, ErrNoWorker) {
		t.Fatalf("jailed worker: %v", err)
	}
	if ae := backendError(err, ""); ae.Status != 503 {
		t.Fatalf("status %d for no worker", ae.Status)
	}
	if len(p.Models()) != 1 {
		t.Fatalf("models %v", p.Models())
	}
}

// TestLedgerAccountsAuth maps API keys to ledger addresses.
func TestLedgerAccountsAuth(t *testing.T) {
	k, err := keys.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	la, err := NewLedgerAccounts(nil, map[string]*keys.Key{"vk-1": k})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := ledger.AddressOf(k.Public)
	for _, c := range []struct {
		header, want string
		ok           bool
	}{
		{"Bearer vk-1", a.String(), true},
		{"Bearer vk-2", "", false},
		{"vk-1", "", false},
		{"", "", false},
	} {
		r := httptest.NewRequest("GET", "/v1/models", nil)
		if c.header != "" {
			r.Header.Set("Authorization", c.header)
		}
		got, err := la.Authenticate(r)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("%q: %q, %v", c.header, got, err)
		}
	}
	if _, err := NewLedgerAccounts(nil, map[string]*keys.Key{"": k}); err == nil {
		t.Fatal("accepted an empty API key")
	}
}
