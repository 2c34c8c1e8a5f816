package devnet

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/chat"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/worker"
)

// BenchmarkPublish measures how fast the worker publishes, apart from
// serving: 1000 receipts (generated first, 4 tokens each) are submitted
// to the running worker's outbox at once, paid by the devnet's user, and
// the benchmark times them until the outbox is empty (300 ms blocks).
// Submissions come from 16 goroutines, as the gateway's requests do.
// Run with -bench Publish -benchtime 1x.
func BenchmarkPublish(b *testing.B) {
	const n = 1000
	d := start(b, Options{BlockInterval: 300 * time.Millisecond})
	ctx := context.Background()
	user, _ := ledger.AddressOf(d.User.Public)
	params, err := d.Client.Params(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for it := range b.N {
		ps := make([]worker.Pending, n)
		for i := range ps {
			res, err := d.Worker.Generate(ctx, worker.Request{Model: d.Model.Name, Segments: []chat.Segment{{Text: "The cat", BOS: true}},
				MaxTokens: 4, Nonce: []byte{byte(it), byte(i), byte(i >> 8)}}, nil)
			if err != nil {
				b.Fatal(err)
			}
			ps[i] = worker.Pending{ReceiptID: res.ReceiptID, Receipt: res.Receipt, Requester: user.String(), Fee: params.MinEscrowFee}
		}
		ids := map[string]bool{}
		for _, p := range ps {
			ids[p.ReceiptID] = true
		}
		if len(ids) != n {
			b.Fatalf("%d distinct receipts of %d", len(ids), n)
		}
		before := d.Chain.Stats().Published
		t0 := time.Now()
		// 16 submitters, as the gateway's concurrent requests.
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += 16 {
					if err := d.Chain.Submit(ps[i]); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		submitted := time.Since(t0)
		left := d.Chain.PendingCount()
		// The count follows the outbox's removal by a moment.
		for (d.Chain.PendingCount() > 0 || d.Chain.Stats().Published-before < n) && time.Since(t0) < 5*time.Minute {
			time.Sleep(20 * time.Millisecond)
		}
		el := time.Since(t0)
		st := d.Chain.Stats()
		if st.Pending != 0 || st.Published-before != n || st.Failed != 0 {
			b.Fatalf("after %v: %+v", el, st)
		}
		b.ReportMetric(n/el.Seconds(), "published/s")
		b.ReportMetric(n/submitted.Seconds(), "submitted/s")
		b.Logf("%d receipts submitted in %v (16 at a time; %d in the outbox then), all published in %v", n, submitted.Round(time.Millisecond), left, el.Round(time.Millisecond))
	}
}
