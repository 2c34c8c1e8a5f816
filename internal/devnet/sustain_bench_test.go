package devnet

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/node"
)

// BenchmarkSustainedLoad measures the worker's ledger side under 10 s of
// sustained load (16 clients, 4-token completions): what
// the gateway serves and refuses (429 once the outbox passes its bound),
// what the worker publishes meanwhile, how long the outbox takes to
// drain, the time from answer to final at rest, for a receipt asked at the
// end of the load (when admitted) and for the last receipt admitted during
// the load, the mean block time and the worst audit (blocks from
// selection to resolution), and logs the outbox's size each second. Run
// with -bench SustainedLoad -benchtime 1x; it takes about a minute for
// each network: the devnet's (one validator, 300 ms blocks, DevParams),
// and a testnet's as `verdict testnet` writes it (four validators, 500 ms
// timeout_commit, the default parameters), its validators in this process
// (each a CometBFT node with its own databases and p2p on loopback).
func BenchmarkSustainedLoad(b *testing.B) {
	b.Run("devnet", func(b *testing.B) { sustainedLoad(b, Options{BlockInterval: 300 * time.Millisecond}) })
	p := ledger.DefaultParams()
	b.Run("testnet4", func(b *testing.B) {
		sustainedLoad(b, Options{BlockInterval: node.DefaultOptions().BlockInterval, Validators: 4, Params: &p})
	})
}

func sustainedLoad(b *testing.B, o Options) {
	d := start(b, o)
	began := time.Now()
	h0, _ := d.Client.Height(context.Background())
	toFinal := func(prompt string, seed int64) (time.Duration, bool) {
		t0 := time.Now()
		code, body := post(b, d, d.APIKey, "/v1/completions", fmt.Sprintf(`{"model":"verdict-tiny","prompt":%q,"max_tokens":4,"seed":%d}`, prompt, seed))
		if code != 200 {
			return 0, false
		}
		var r chatResponse
		json.Unmarshal(body, &r)
		waitStatus(b, d, r.Verdict.ReceiptID, 120*time.Second, ledger.StatusFinal)
		return time.Since(t0), true
	}
	for range b.N {
		rest, _ := toFinal("The dog", time.Now().UnixNano())
		var served, refused atomic.Int64
		type answer struct {
			id string
			at time.Time
		}
		var last atomic.Pointer[answer] // the last request admitted during the load
		stop := time.Now().Add(10 * time.Second)
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; time.Now().Before(stop); i++ {
					code, body := post(b, d, d.APIKey, "/v1/completions", fmt.Sprintf(`{"model":"verdict-tiny","prompt":"The cat","max_tokens":4,"seed":%d}`, w*1000000+i))
					switch code {
					case 200:
						served.Add(1)
						var r chatResponse
						if json.Unmarshal(body, &r) == nil {
							last.Store(&answer{r.Verdict.ReceiptID, time.Now()})
						}
					case 429:
						refused.Add(1)
					}
				}
			}()
		}
		t0 := time.Now()
		peak := 0
		var sizes []int // the outbox each second
		for i := 0; time.Now().Before(stop); i++ {
			n := d.Chain.PendingCount()
			peak = max(peak, n)
			if i%10 == 0 {
				sizes = append(sizes, n)
			}
			time.Sleep(100 * time.Millisecond)
		}
		published := d.Chain.Stats().Published
		loaded, answered := toFinal("The bird", time.Now().UnixNano()) // answered at the end of the load, if admitted
		wg.Wait()
		el := stop.Sub(t0)
		td := time.Now()
		for d.Chain.PendingCount() > 0 && time.Since(td) < 120*time.Second {
			time.Sleep(100 * time.Millisecond)
		}
		drained := time.Since(td)
		var lastFinal time.Duration
		if a := last.Load(); a != nil {
			waitStatus(b, d, a.id, 180*time.Second, ledger.StatusFinal)
			lastFinal = time.Since(a.at)
		}
		st := d.Chain.Stats()
		b.ReportMetric(drained.Seconds(), "s-drain")
		b.ReportMetric(lastFinal.Seconds(), "s-final-last-admitted")
		b.ReportMetric(float64(served.Load())/el.Seconds(), "served/s")
		b.ReportMetric(float64(refused.Load())/el.Seconds(), "refused/s")
		b.ReportMetric(float64(published)/10, "published/s")
		b.ReportMetric(float64(peak), "outbox-peak")
		b.ReportMetric(rest.Seconds(), "s-final-at-rest")
		if answered {
			b.ReportMetric(loaded.Seconds(), "s-final-under-load")
		}
		b.ReportMetric(float64(st.WorstAuditBlocks), "worst-audit-blocks")
		h1, _ := d.Client.Height(context.Background())
		b.ReportMetric(time.Since(began).Seconds()/float64(max(h1-h0, 1)), "s/block")
		b.Logf("served %d, refused %d in %v; published %d during the load; outbox peak %d, each second %v, drained %v after the load; at rest final in %v; under load (admitted %v) final in %v; %+v",
			served.Load(), refused.Load(), el.Round(time.Millisecond), published, peak, sizes, drained.Round(time.Millisecond), rest.Round(time.Millisecond), answered, loaded.Round(time.Millisecond), st)
	}
}
