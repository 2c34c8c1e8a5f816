package explorer

import (
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
)

// An explorer over a ledger (here a stand-in for *client.Client) and an
// index fed with blocks (Index.Run does it from a client.Follower; Start
// does both). It is an http.Handler for the paths under /explorer/.
func ExampleNew() {
	l := newFake()
	l.chain = ledger.ChainInfo{ChainID: "example", Height: 2, Time: 1_700_000_002}
	x := NewIndex()
	for h := int64(1); h <= 2; h++ {
		x.Add(client.Block{Height: h, Time: time.Unix(1_700_000_000+h, 0)})
	}
	e, err := New(Options{Ledger: l, Index: x})
	if err != nil {
		panic(err)
	}
	for _, c := range []struct{ name, path string }{
		{"overview", "/explorer/"},
		{"an unknown receipt", "/explorer/receipt/" + ledger.Hash{1}.String()},
	} {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest("GET", c.path, nil))
		fmt.Println(c.name, rec.Code)
	}
	// Output:
	// overview 200
	// an unknown receipt 404
}
