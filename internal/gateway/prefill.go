package gateway

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/verdictnet/verdict/internal/inference"
)

// A caller who hangs up before the first output token pays nothing: no
// receipt exists without an output token, so the prompt the worker
// computed for it (up to a full context) is free. The gateway counts, per
// caller, the prompt positions so abandoned (inference.AbandonedError: the
// positions fed through the model, not those taken from its prefix cache)
// in a bucket that drains at Options.AbandonedPrefill positions a minute;
// while a caller's bucket holds more than that, its new requests are
// refused (429 rate_limit_exceeded, Retry-After: when it will be back
// under). Requests already running are not stopped.

// DefaultAbandonedPrefillContexts is Options.AbandonedPrefill's default, in
// full contexts of the longest served model a minute.
const DefaultAbandonedPrefillContexts = 4

// defaultContext is the context assumed for the default budget when the
// backend lists no model yet.
const defaultContext = 4096

// ErrAbandonedPrefill is returned (wrapped) for a caller whose requests
// that ended before their first output token made the worker compute more
// prompt positions than its budget (Options.AbandonedPrefill); the request
// gets 429 rate_limit_exceeded with Retry-After.
var ErrAbandonedPrefill = errors.New("too many prompt positions abandoned before the first token")

// prefillRefusal is the error of a caller over its abandoned-prefill
// budget.
type prefillRefusal struct {
	owed, budget int
	retry        time.Duration
}

func (e *prefillRefusal) Error() string {
	return fmt.Sprintf("%v: your requests that ended before their first output token left %d prompt positions computed and unpaid (at most %d a minute); retry in %d s",
		ErrAbandonedPrefill, e.owed, e.budget, retrySeconds(e.retry))
}

func (e *prefillRefusal) Unwrap() error { return ErrAbandonedPrefill }

// retrySeconds is a Retry-After of d: whole seconds, at least 1.
func retrySeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// prefillBudget is the per-caller bucket of abandoned prompt positions:
// each abandonment adds its positions, the bucket drains at perMinute
// positions a minute, and a caller is refused while it holds more than
// perMinute. Buckets that have drained are forgotten.
type prefillBudget struct {
	// limit is the positions a minute (<= 0: no limit), read when a
	// caller has abandoned some (the default follows the served models).
	limit func() int
	now   func() time.Time

	mu    sync.Mutex
	owed  map[string]*owed
	sweep int // the size at which drained buckets are next forgotten
}

type owed struct {
	level float64 // positions, as of at
	at    time.Time
}

func newPrefillBudget(limit func() int, now func() time.Time) *prefillBudget {
	return &prefillBudget{limit: limit, now: now, owed: map[string]*owed{}, sweep: 1024}
}

// levelLocked drains o, at perMinute, to t and returns its level.
func levelLocked(o *owed, perMinute int, t time.Time) float64 {
	if dt := t.Sub(o.at); dt > 0 {
		o.level = max(0, o.level-float64(float64(perMinute)*dt.Minutes())) // float64(...): no fused multiply-add (detcheck)
		o.at = t
	}
	return o.level
}

// admit refuses (a *prefillRefusal) a caller over its budget. The empty
// caller (unidentified) is never refused: it would share one bucket with
// every other.
func (b *prefillBudget) admit(caller string) error {
	if caller == "" {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	o := b.owed[caller]
	if o == nil {
		return nil
	}
	perMinute := b.limit()
	if perMinute <= 0 {
		return nil
	}
	over := levelLocked(o, perMinute, b.now()) - float64(perMinute)
	if over <= 0 {
		return nil
	}
	return &prefillRefusal{owed: int(math.Ceil(o.level)), budget: perMinute,
		retry: time.Duration(over / float64(perMinute) * float64(time.Minute))}
}

// abandon adds n abandoned prompt positions to caller's bucket.
func (b *prefillBudget) abandon(caller string, n int) {
	if caller == "" || n <= 0 {
		return
	}
	perMinute := b.limit()
	if perMinute <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.now()
	o := b.owed[caller]
	if o == nil {
		if len(b.owed) >= b.sweep {
			for c, q := range b.owed {
				if levelLocked(q, perMinute, t) == 0 {
					delete(b.owed, c)
				}
			}
			b.sweep = max(1024, 2*len(b.owed))
		}
		o = &owed{at: t}
		b.owed[caller] = o
	}
	levelLocked(o, perMinute, t)
	o.level += float64(n)
}

// defaultAbandonedPrefill is DefaultAbandonedPrefillContexts full contexts
// of the longest model b serves.
func defaultAbandonedPrefill(b Backend) int {
	ctx := 0
	for _, m := range b.Models() {
		ctx = max(ctx, m.ContextLen)
	}
	if ctx == 0 {
		ctx = defaultContext
	}
	return DefaultAbandonedPrefillContexts * ctx
}

// addrKey carries the client's address (host, no port) in a request's
// context: the caller, for the abandoned-prefill budget, of a request
// without an account (a gateway without API keys). An MCP session's tool
// calls carry that of the request that opened the session.
type addrKey struct{}

func withClientAddr(r *http.Request) *http.Request {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if host == "" {
		return r
	}
	return r.WithContext(context.WithValue(r.Context(), addrKey{}, host))
}

// callerOf names the caller of a generation for the abandoned-prefill
// budget: its account, or without one the client's address; "" when
// neither is known.
func callerOf(ctx context.Context, account string) string {
	if account != "" {
		return "account " + account
	}
	if a, _ := ctx.Value(addrKey{}).(string); a != "" {
		return "address " + a
	}
	return ""
}

// abandoned counts the prompt positions of a generation abandoned before
// its first token (err an inference.AbandonedError) against caller.
func (s *Server) abandoned(caller string, err error) {
	var ab *inference.AbandonedError
	if !errors.As(err, &ab) {
		return
	}
	s.m.abandonedPrefill.Add(float64(ab.PromptComputed))
	s.prefill.abandon(caller, ab.PromptComputed)
	s.log.Info("generation abandoned before its first token", "caller", caller, "prompt_computed", ab.PromptComputed)
}
