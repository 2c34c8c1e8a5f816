package gateway_test

import (
	"fmt"

	"github.com/verdictnet/verdict/internal/gateway"
	"github.com/verdictnet/verdict/internal/ledger"
)

// Workers are ranked by stake times record over price: a worker slashed
// once in ten receipts counts its stake at half (10/20), and a jailed one
// is not eligible.
func ExampleRank() {
	ws := []gateway.Candidate{
		{Address: ledger.Address{1}, Stake: 3000, Final: 9, Slashed: 1, Price: 1}, // 3000 * 10/20 = 1500
		{Address: ledger.Address{2}, Stake: 2000, Price: 1},                       // 2000
		{Address: ledger.Address{3}, Stake: 8000, Price: 2},                       // 4000
		{Address: ledger.Address{4}, Stake: 9000, Jailed: true},
	}
	for _, c := range gateway.Rank(ws, 1000) {
		fmt.Println(c.Address[0], c.Score())
	}
	// Output:
	// 3 4000
	// 2 2000
	// 1 1500
}
