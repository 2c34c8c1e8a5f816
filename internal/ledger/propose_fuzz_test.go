package ledger

import (
	"bytes"
	"testing"
)

// FuzzPropose: whatever the mempool holds (transactions, or bytes a
// signer field cannot be read from), a proposal takes each transaction at
// most once, within maxBytes, every sender's in their order, and none of
// a sender's after one of theirs left out.
func FuzzPropose(f *testing.F) {
	txs := seedTxs(f)
	f.Add(bytes.Join(txs[:6], []byte{0}), uint16(2000))
	f.Add(bytes.Join(txs, []byte{0}), uint16(600))
	f.Add([]byte(`{"signer":"`+string(bytes.Repeat([]byte("a"), 64))+`","msg":{"postOpenings":{}}}`+"\x00"+`{"signer":"zz"}`), uint16(50))
	f.Fuzz(func(t *testing.T, blob []byte, max uint16) {
		mempool := bytes.Split(blob, []byte{0})
		out := Propose(mempool, int64(max))
		var used int64
		pos := map[*byte]int{} // a transaction by its first byte's address
		for i, tx := range mempool {
			if len(tx) > 0 {
				pos[&tx[0]] = i
			}
		}
		seen := map[int]bool{}
		last := map[string]int{}
		for _, tx := range out {
			used += int64(len(tx))
			if len(tx) == 0 {
				continue
			}
			i, ok := pos[&tx[0]]
			if !ok || seen[i] {
				t.Fatalf("proposed a transaction not in the mempool, or twice")
			}
			seen[i] = true
			if s, _ := peekTx(tx); s != "" {
				if j, ok := last[s]; ok && j > i {
					t.Fatalf("sender %s's transactions %d and %d out of order", s, j, i)
				}
				last[s] = i
			}
		}
		if used > int64(max) {
			t.Fatalf("%d bytes proposed, at most %d", used, max)
		}
		// A sender's transaction left out leaves out the later ones.
		for i, tx := range mempool {
			s, _ := peekTx(tx)
			if s == "" || len(tx) == 0 || seen[i] {
				continue
			}
			for j := i + 1; j < len(mempool); j++ {
				if sj, _ := peekTx(mempool[j]); sj == s && len(mempool[j]) > 0 && seen[j] {
					t.Fatalf("sender %s: transaction %d left out, %d after it proposed", s, i, j)
				}
			}
		}
	})
}
