package devnet

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/ledger"
)

// BenchmarkSustainedLoad measures the worker's ledger side under 10 s of
// sustained load (16 clients, 4-token completions, 300 ms blocks): what
// the gateway serves and refuses (429 once the outbox passes its bound),
// what the worker publishes meanwhile, how long the outbox takes to
// drain, the time from answer to final at rest and for a receipt answered
// at the end of the load, and the worst audit (blocks from selection to
// resolution), and logs the outbox's size each second. Run with -bench
// SustainedLoad -benchtime 1x; it takes about a minute.
func BenchmarkSustainedLoad(b *testing.B) {
	d := start(b, Options{BlockInterval: 300 * time.Millisecond})
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
		stop := time.Now().Add(10 * time.Second)
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; time.Now().Before(stop); i++ {
					code, _ := post(b, d, d.APIKey, "/v1/completions", fmt.Sprintf(`{"model":"verdict-tiny","prompt":"The cat","max_tokens":4,"seed":%d}`, w*1000000+i))
					switch code {
					case 200:
						served.Add(1)
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
		st := d.Chain.Stats()
		b.ReportMetric(float64(served.Load())/el.Seconds(), "served/s")
		b.ReportMetric(float64(refused.Load())/el.Seconds(), "refused/s")
		b.ReportMetric(float64(published)/10, "published/s")
		b.ReportMetric(float64(peak), "outbox-peak")
		b.ReportMetric(rest.Seconds(), "s-final-at-rest")
		if answered {
			b.ReportMetric(loaded.Seconds(), "s-final-under-load")
		}
		b.ReportMetric(float64(st.WorstAuditBlocks), "worst-audit-blocks")
		b.Logf("served %d, refused %d in %v; published %d during the load; outbox peak %d, each second %v, drained %v after the load; at rest final in %v; under load (admitted %v) final in %v; %+v",
			served.Load(), refused.Load(), el.Round(time.Millisecond), published, peak, sizes, drained.Round(time.Millisecond), rest.Round(time.Millisecond), answered, loaded.Round(time.Millisecond), st)
	}
}
