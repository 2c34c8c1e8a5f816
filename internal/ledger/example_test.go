package ledger_test

import (
	"crypto/ed25519"
	"fmt"

	"github.com/verdictnet/verdict/internal/ledger"
)

// A transaction is signed over its canonical encoding and decoded strictly.
func ExampleDecodeTx() {
	priv := ed25519.NewKeyFromSeed(make([]byte, 32))
	tx := &ledger.Tx{ChainID: "verdict-dev", Nonce: 0, Fee: 1,
		Msg: &ledger.MsgBond{Amount: 1000}}
	tx.Sign(priv)
	got, err := ledger.DecodeTx(tx.Encode())
	fmt.Println(got.Msg.Kind(), got.Msg.(*ledger.MsgBond).Amount, err)

	tampered := tx.Encode()
	tampered[len(tampered)-3] ^= 1 // inside the signature
	_, err = ledger.DecodeTx(tampered)
	fmt.Println(ledger.Code(err) == ledger.Code(ledger.ErrSignature) || ledger.Code(err) == ledger.Code(ledger.ErrDecode))
	// Output:
	// bond 1000 <nil>
	// true
}

// Feeding a block to the state machine and reading the result.
func ExampleLedger_FinalizeBlock() {
	alice := ed25519.NewKeyFromSeed(make([]byte, 32))
	var bob ledger.Address
	bob[0] = 0xb0
	l := ledger.New(ledger.NewMemStore(), ledger.Hooks{})
	a, _ := ledger.AddressOf(alice.Public().(ed25519.PublicKey))
	if err := l.InitGenesis(ledger.Genesis{ChainID: "demo", Params: ledger.DefaultParams(),
		Accounts: []ledger.GenesisAccount{{Address: a, Balance: 100}}}); err != nil {
		panic(err)
	}
	tx := &ledger.Tx{ChainID: "demo", Fee: 1, Msg: &ledger.MsgSend{To: bob, Amount: 40}}
	tx.Sign(alice)
	res, err := l.FinalizeBlock(ledger.BlockContext{Height: 1, Time: 1700000000}, [][]byte{tx.Encode()})
	if err != nil {
		panic(err)
	}
	out, _ := l.Query("account/"+bob.String(), nil)
	fmt.Println(res.TxResults[0].Code, string(out))
	// Output: 0 {"balance":40,"nonce":0}
}

// A receipt record maps onto the five statuses a client shows.
func ExampleReceiptRecord_Shown() {
	for _, r := range []ledger.ReceiptRecord{
		{Status: ledger.StatusPublished},
		{Status: ledger.StatusPublished, Audited: true, Audit: ledger.AuditPending},
		{Status: ledger.StatusPublished, Audited: true, Audit: ledger.AuditPassed},
		{Status: ledger.StatusChallenged},
		{Status: ledger.StatusFinal, Audited: true, Audit: ledger.AuditPassed},
		{Status: ledger.StatusSlashed, Audited: true, Audit: ledger.AuditMissed},
	} {
		fmt.Println(r.Shown())
	}
	// Output:
	// published
	// published
	// audited
	// challenged
	// final
	// slashed
}
