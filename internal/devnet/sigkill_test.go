package devnet

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	rpchttp "github.com/cometbft/cometbft/rpc/client/http"

	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
	"github.com/verdictnet/verdict/internal/ledger/node"
	"github.com/verdictnet/verdict/internal/testutil"
)

// The crash test's child process: a devnet run by this test binary (a
// real process, so that SIGKILL takes the ledger, the worker and the
// gateway down at once, mid-write). The parent sets these variables.
const (
	childDirEnv    = "VERDICT_CRASH_CHILD_DIR"
	childModelEnv  = "VERDICT_CRASH_CHILD_MODEL"
	childParamsEnv = "VERDICT_CRASH_CHILD_PARAMS" // ledger.Params as JSON
	childOutboxEnv = "VERDICT_CRASH_CHILD_MAX_PENDING"
	childLine      = "CRASHCHILD "
)

// childInfo is what the child prints once its devnet is ready.
type childInfo struct {
	Gateway, RPC, APIKey string
	Worker, User         string
}

// TestCrashChild is not a test: it runs the devnet of TestCrashSIGKILL in
// a child process (and is skipped otherwise). It prints one line with the
// addresses once ready and stops cleanly when its stdin closes.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(childDirEnv)
	if dir == "" {
		t.Skip("the child process of TestCrashSIGKILL")
	}
	var p ledger.Params
	if err := json.Unmarshal([]byte(os.Getenv(childParamsEnv)), &p); err != nil {
		t.Fatal(err)
	}
	maxPending, _ := strconv.Atoi(os.Getenv(childOutboxEnv))
	o := Options{Dir: dir, ModelPath: os.Getenv(childModelEnv), Addr: "127.0.0.1:0", BlockInterval: crashBlock, Threads: 1,
		Params: &p, MaxPending: maxPending, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	d, err := Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	user, _ := ledger.AddressOf(d.User.Public)
	b, _ := json.Marshal(childInfo{Gateway: d.GatewayURL, RPC: d.RPC, APIKey: d.APIKey, Worker: d.Chain.Address().String(), User: user.String()})
	fmt.Printf("%s%s\n", childLine, b)
	stopped := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(stopped)
	}()
	select {
	case <-stopped:
		if err := d.Stop(); err != nil {
			t.Fatal(err)
		}
	case <-d.done:
		t.Fatal(d.Wait())
	}
}

// crashBlock is the crash test's block interval: the devnet's default, so
// that the deadlines it measures are in the blocks DevParams counts
// (twice that under the race detector: raceBlocks).
const crashBlock = raceBlocks * 300 * time.Millisecond

// crashOutbox is the crash test's outbox bound: the load the worker
// admits is what it publishes, a full outbox answers 429.
const crashOutbox = 64

// child is a running devnet process.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	info  childInfo
	log   string
}

func startChild(t *testing.T, dir, model string, p ledger.Params, n int) *child {
	t.Helper()
	pb, _ := json.Marshal(p)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1", "-test.timeout=0")
	cmd.Env = append(os.Environ(), childDirEnv+"="+dir, childModelEnv+"="+model, childParamsEnv+"="+string(pb), fmt.Sprintf("%s=%d", childOutboxEnv, crashOutbox))
	logPath := filepath.Join(filepath.Dir(dir), fmt.Sprintf("child-%d.log", n))
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin, log: logPath}
	t.Cleanup(func() { c.kill() })
	ready := make(chan childInfo, 1)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if l, ok := strings.CutPrefix(sc.Text(), childLine); ok {
				var ci childInfo
				if json.Unmarshal([]byte(l), &ci) == nil {
					ready <- ci
				}
			}
		}
	}()
	select {
	case c.info = <-ready:
	case <-exited:
		c.kill()
		t.Fatalf("devnet process %d exited before it was ready:\n%s", n, tail(logPath))
	case <-time.After(120 * time.Second):
		c.kill()
		t.Fatalf("devnet process %d not ready in 120 s:\n%s", n, tail(logPath))
	}
	return c
}

func (c *child) kill() {
	if c.cmd.ProcessState == nil {
		c.cmd.Process.Signal(syscall.SIGKILL)
		c.cmd.Wait()
	}
}

// stop closes the child's stdin (a clean stop) and waits for it.
func (c *child) stop(t *testing.T) {
	c.stdin.Close()
	if err := c.cmd.Wait(); err != nil {
		t.Errorf("devnet process: %v\n%s", err, tail(c.log))
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// outboxSummary counts the outbox's records by their state as stored:
// attempts failed, an escrow open or its transaction recorded.
func outboxSummary(dir string) string {
	ents, _ := os.ReadDir(filepath.Join(dir, "worker", "outbox"))
	counts := map[string]int{}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, "worker", "outbox", e.Name()))
		if err != nil {
			continue
		}
		var r struct {
			EscrowID ledger.Hash `json:"escrowId"`
			EscrowTx []byte      `json:"escrowTx"`
			Attempts int         `json:"attempts"`
		}
		if json.Unmarshal(b, &r) != nil {
			counts["unreadable"]++
			continue
		}
		counts[fmt.Sprintf("attempts=%d escrow=%t escrowTx=%t", r.Attempts, r.EscrowID != ledger.Hash{}, len(r.EscrowTx) > 0)]++
	}
	return fmt.Sprint(counts)
}

// problems returns the last n lines of a log at level WARN or ERROR: why
// a devnet got stuck, where the tail of its log holds only routine lines.
func problems(path string, n int) string {
	b, _ := os.ReadFile(path)
	var lines []string
	for l := range strings.Lines(string(b)) {
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines[max(0, len(lines)-n):], "")
}

// answered is a request the gateway answered with 200.
type answered struct {
	id     string
	fee    uint64 // prompt and completion tokens at the devnet's price (1)
	at     time.Time
	killed int // kills after it was answered
}

// TestCrashSIGKILL runs a devnet (stories260K) as a child process under
// sustained load from concurrent clients, SIGKILLs it at random moments
// (seeded: VERDICT_CRASH_SEED reruns a seed) and restarts it on the same
// data directory, three times; a lying challenger opens a dispute on a
// fresh receipt before the first kill and, at random, before the others.
// After a drain, read from the ledger's blocks:
//
//   - nothing answered is lost: every request answered 200 has its receipt
//     final, charged the fee the gateway quoted;
//   - no honest slash: no audit missed or failed, no slash or jail of the
//     worker, every published receipt final, every dispute won by it;
//   - balances exact: the payer's and the worker's balances equal what
//     the blocks' events add up to (transfers, transaction fees, escrows
//     opened, refunded and settled, payouts less the protocol fee, rewards, bonds),
//     and the payer paid, net of refunds, exactly the fees of the final
//     receipts;
//   - deadlines with margin: every audit's openings and every first
//     dispute answer committed within half its window (in blocks), after
//     restarts included.
//
// It also logs how long receipts take to become final under load and at
// rest.
func TestCrashSIGKILL(t *testing.T) {
	model := testutil.Shared(t, "models/stories260K.gguf")
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("VERDICT_CRASH_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("seed %d (VERDICT_CRASH_SEED=%d reruns it)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 13))
	const kills = 3
	p := DevParams()
	p.AuditRateBps = 3000 // many audits, some selected right before a kill
	// VERDICT_CRASH_DIR keeps the data and the processes' logs there.
	dir := filepath.Join(cmpOr(os.Getenv("VERDICT_CRASH_DIR"), t.TempDir()), "data")
	if w, err := strconv.Atoi(os.Getenv("VERDICT_CRASH_DEBUG_WINDOW")); err == nil {
		p.OpeningWindow, p.MoveWindow, p.ChallengeWindow = uint64(w), uint64(w), uint64(w+5)
	}
	ctx := context.Background()

	c := startChild(t, dir, model, p, 0)
	rpc0 := c.info.RPC // the same after every restart
	lc, err := client.New(c.info.RPC)
	if err != nil {
		t.Fatal(err)
	}
	rpc, err := rpchttp.New(c.info.RPC, "/websocket")
	if err != nil {
		t.Fatal(err)
	}
	user, _ := ledger.ParseAddress(c.info.User)
	wa, _ := ledger.ParseAddress(c.info.Worker)
	challengers := fundChallengers(t, lc, dir, kills, p)

	// The load: clients send completions as fast as they are answered,
	// each with its own seed, to whichever devnet process runs.
	var (
		base    atomic.Pointer[childInfo]
		mu      sync.Mutex
		ok      []answered
		codes   = map[int]int{}
		samples = map[int]string{}
		neterrs int
		killed  atomic.Int64
		stopped atomic.Bool
		next    atomic.Int64
		wg      sync.WaitGroup
	)
	base.Store(&c.info)
	hc := &http.Client{Timeout: 30 * time.Second}
	const clients = 4
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stopped.Load() {
				ci := base.Load()
				if ci == nil {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				i := next.Add(1)
				body := fmt.Sprintf(`{"model":"stories260K","prompt":"Once upon a time","max_tokens":%d,"temperature":0.8,"seed":%d}`, 4+i%8, i)
				req, _ := http.NewRequest("POST", ci.Gateway+"/v1/completions", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+ci.APIKey)
				k := killed.Load()
				resp, err := hc.Do(req)
				if err != nil {
					mu.Lock()
					neterrs++
					mu.Unlock()
					time.Sleep(50 * time.Millisecond)
					continue
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				mu.Lock()
				codes[resp.StatusCode]++
				if _, seen := samples[resp.StatusCode]; !seen && resp.StatusCode != 200 {
					samples[resp.StatusCode] = string(b)
				}
				if resp.StatusCode == 200 && err == nil {
					var r chatResponse
					if json.Unmarshal(b, &r) == nil && r.Verdict.ReceiptID != "" {
						ok = append(ok, answered{id: r.Verdict.ReceiptID, fee: uint64(r.Usage.PromptTokens + r.Usage.CompletionTokens), at: time.Now(), killed: int(k)})
					}
				}
				mu.Unlock()
				if resp.StatusCode != 200 {
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	}
	t.Cleanup(func() { stopped.Store(true); wg.Wait() })

	var restarts []time.Duration
	var killedAt, readyAt []int64
	for k := range kills {
		time.Sleep(time.Duration(1500+rng.IntN(3000)) * time.Millisecond)
		if k < len(challengers) && (k == 0 || rng.IntN(2) > 0) {
			// A lying challenger disputes the latest answer published;
			// the kill may come before the worker's answer.
			challenge(t, lc, challengers[k], func() []string {
				mu.Lock()
				defer mu.Unlock()
				ids := make([]string, 0, len(ok))
				for _, a := range ok {
					ids = append(ids, a.id)
				}
				return ids
			})
			time.Sleep(time.Duration(rng.IntN(1000)) * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(1000)) * time.Millisecond)
		h, _ := lc.Height(ctx)
		killed.Add(1)
		base.Store(nil)
		c.cmd.Process.Signal(syscall.SIGKILL)
		c.cmd.Wait()
		t0 := time.Now()
		c = startChild(t, dir, model, p, k+1)
		restarts = append(restarts, time.Since(t0))
		if c.info.RPC != rpc0 {
			t.Fatalf("ledger RPC %s after restart %d, was %s", c.info.RPC, k+1, rpc0)
		}
		base.Store(&c.info)
		hr, _ := lc.Height(ctx)
		killedAt, readyAt = append(killedAt, h), append(readyAt, hr)
		t.Logf("kill %d at height %d; restarted in %v", k+1, h, time.Since(t0).Round(time.Millisecond))
	}
	time.Sleep(3 * time.Second)
	stopped.Store(true)
	wg.Wait()
	loadEnd := time.Now()
	mu.Lock()
	t.Logf("load: %d requests answered 200, status counts %v (%v), %d connection errors (the process was down)", len(ok), codes, samples, neterrs)
	mu.Unlock()
	if len(ok) < 20 {
		t.Fatalf("only %d requests answered", len(ok))
	}

	// At rest: one request on the idle devnet (once the outbox drained),
	// answered to final.
	for deadline := time.Now().Add(90 * time.Second); outboxLen(t, dir) > 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d receipts still in the outbox 90 s after the load (%s); the devnet's warnings and errors:\n%s", outboxLen(t, dir), outboxSummary(dir), problems(c.log, 40))
		}
	}
	drained := time.Now()
	t.Logf("outbox drained %v after the load ended", drained.Sub(loadEnd).Round(10*time.Millisecond))
	time.Sleep(time.Second)
	code, body := postTo(t, c.info, `{"model":"stories260K","prompt":"Once upon a time","max_tokens":8,"seed":1}`)
	if code != 200 {
		t.Fatalf("at rest: status %d: %s", code, body)
	}
	var rest chatResponse
	json.Unmarshal(body, &rest)
	ok = append(ok, answered{id: rest.Verdict.ReceiptID, fee: uint64(rest.Usage.PromptTokens + rest.Usage.CompletionTokens), at: time.Now(), killed: kills})
	restAt := time.Now()

	// Drain: every answer final, every escrow settled, the outbox empty.
	sc := &scanner{rpc: rpc, next: 1, published: map[string]string{}, final: map[string]finalEv{}, escrows: map[string]bool{}}
	deadline := time.Now().Add(90 * time.Second)
	for {
		if err := sc.scan(ctx); err != nil {
			t.Fatal(err)
		}
		missing := 0
		for _, a := range ok {
			if _, done := sc.final[a.id]; !done {
				missing++
			}
		}
		open := sc.openEscrows()
		if missing == 0 && open == 0 && outboxLen(t, dir) == 0 {
			break
		}
		if time.Now().After(deadline) {
			for _, a := range ok {
				if _, done := sc.final[a.id]; !done {
					id, _ := ledger.ParseHash(a.id)
					rec, found, err := lc.Receipt(ctx, id)
					_, ferr := os.Stat(filepath.Join(dir, "worker", "failed", a.id+".json"))
					t.Logf("not final: %s answered after %d kills at %v: on the ledger %v %+v %v; published event %v; in failed/ %v",
						a.id, a.killed, a.at.Format("15:04:05.000"), found, rec, err, sc.published[a.id] != "", ferr == nil)
				}
			}
			if len(sc.bad) > 0 {
				t.Logf("honest worker punished or failing:\n%s\nkills at heights %v, ready again at %v; the processes' log lines about those receipts:\n%s",
					strings.Join(sc.bad, "\n"), killedAt, readyAt, logLinesAbout(filepath.Dir(dir), kills, sc.badIDs))
			}
			t.Fatalf("after the drain: %d answered receipts not final, %d escrows open, %d in the outbox", missing, open, outboxLen(t, dir))
		}
		time.Sleep(500 * time.Millisecond)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "worker", "failed")); len(ents) != 0 {
		t.Errorf("%d receipts given up on (worker/failed)", len(ents))
	}

	// Nothing answered lost, each charged its quoted fee.
	for _, a := range ok {
		if f := sc.final[a.id]; f.fee != a.fee {
			t.Errorf("receipt %s: final with fee %d, answered with %d tokens", a.id, f.fee, a.fee)
		}
	}
	// No honest slash: every published receipt final, no audit missed or
	// failed, nothing slashed from the worker, every dispute won by it.
	for id := range sc.published {
		if _, done := sc.final[id]; !done {
			t.Errorf("receipt %s published and not final", id)
		}
	}
	if len(sc.bad) > 0 {
		t.Errorf("honest worker punished or failing:\n%s\nkills at heights %v, ready again at %v; the processes' log lines about those receipts:\n%s",
			strings.Join(sc.bad, "\n"), killedAt, readyAt, logLinesAbout(filepath.Dir(dir), kills, sc.badIDs))
	}
	for _, s := range sc.slashed {
		if s == wa.String() {
			t.Errorf("the worker was slashed")
		}
	}
	st, err := lc.Stake(ctx, wa)
	if err != nil || st.JailedUntil != 0 || st.Slashed != 0 {
		t.Errorf("worker's stake %+v %v", st, err)
	}
	// Balances exact.
	for i := 0; ; i++ {
		h1, _ := lc.Height(ctx)
		ub, wb := accountBalance(t, lc, user), accountBalance(t, lc, wa)
		h2, _ := lc.Height(ctx)
		if h1 != h2 && i < 10 {
			continue
		}
		for sc.next <= h1 {
			if err := sc.scan(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if got, want := ub, sc.balance(user, h1); got != want {
			t.Errorf("payer's balance %d at height %d, the events add up to %d", got, h1, want)
		}
		if got, want := wb, sc.balance(wa, h1); got != want {
			t.Errorf("worker's balance %d at height %d, the events add up to %d", got, h1, want)
		}
		break
	}
	var finalFees, finalToWorker uint64
	for _, f := range sc.final {
		finalFees += f.fee
		finalToWorker += f.fee - f.protocolFee
	}
	_, escrowed := sc.sum(ledger.EventEscrowOpened, user)
	refunded, _ := sc.sum(ledger.EventEscrowRefunded, user)
	settled, _ := sc.sum(ledger.EventEscrowSettled, user)
	if paid := escrowed - refunded - settled; paid != finalFees {
		t.Errorf("payer paid %d into escrows net of refunds, the final receipts' fees are %d", paid, finalFees)
	}
	if got, _ := sc.sum(ledger.EventReceiptFinal, wa); got != finalToWorker {
		t.Errorf("worker was paid %d for final receipts, want %d", got, finalToWorker)
	}
	t.Logf("%d receipts final (%d answered 200 seen by the clients), fees %d, worker paid %d; %d escrows refunded; %d disputes; audit secrets: %d revealed, %d unrevealed (audited)",
		len(sc.final), len(ok), finalFees, finalToWorker, sc.count(ledger.EventEscrowRefunded), sc.count(ledger.EventDisputeOpened),
		sc.count(ledger.EventAuditRevealed), sc.count(ledger.EventAuditUnrevealed))

	// Deadlines: the worst audit and first dispute answer, in blocks.
	worstAudit, worstMove := worst(sc.audits), worst(sc.moves)
	t.Logf("deadlines: %d audits, worst %d blocks from selection to openings committed (openingWindow %d); %d disputes, worst %d blocks from opening to the worker's answer (moveWindow %d); restarts took %v",
		len(sc.audits), worstAudit, p.OpeningWindow, len(sc.moves), worstMove, p.MoveWindow, restarts)
	blocks := func(l string) int64 {
		var a, b int64
		fmt.Sscanf(l[strings.Index(l, " at ")+4:], "%d answered at %d", &a, &b)
		return b - a
	}
	slices.SortStableFunc(sc.slow, func(x, y string) int { return int(blocks(y) - blocks(x)) })
	t.Logf("kills at heights %v, ready again at %v; the slowest answers: %v", killedAt, readyAt, sc.slow[:min(len(sc.slow), 6)])
	if len(sc.audits) == 0 || len(sc.moves) == 0 {
		t.Errorf("%d audits, %d disputes answered: the deadline check checked too little", len(sc.audits), len(sc.moves))
	}
	// The margin docs/ledger.md states (half of each window) is that of a
	// production build. Under the race detector, which slows the worker
	// several times over, each answer must still land inside its window
	// (a missed audit or an unanswered dispute fails above).
	margin := int64(2)
	if raceEnabled {
		margin = 1
	}
	if margin*worstAudit > int64(p.OpeningWindow) {
		t.Errorf("an audit took %d blocks, more than 1/%d of the opening window (%d): not the margin docs/ledger.md states", worstAudit, margin, p.OpeningWindow)
	}
	if margin*worstMove > int64(p.MoveWindow) {
		t.Errorf("a dispute answer took %d blocks, more than 1/%d of the move window (%d)", worstMove, margin, p.MoveWindow)
	}

	// Finality, from the answer to the block that paid the receipt out.
	var lastPhase, all []time.Duration
	for _, a := range ok[:len(ok)-1] {
		d := sc.final[a.id].at.Sub(a.at)
		all = append(all, d)
		if a.killed == kills {
			lastPhase = append(lastPhase, d)
		}
	}
	t.Logf("finality under load with %d clients, after the last restart: %s; all, across the kills: %s; at rest: %v (challengeWindow %d blocks of %v); load ended %v before the last receipt was final",
		clients, pcts(lastPhase), pcts(all), sc.final[rest.Verdict.ReceiptID].at.Sub(restAt).Round(10*time.Millisecond), p.ChallengeWindow, crashBlock,
		sc.lastFinal.Sub(loadEnd).Round(10*time.Millisecond))
	c.stop(t)
	// An ERROR line should mean something is wrong: show those the
	// processes logged.
	var errs []string
	for k := 0; k <= kills; k++ {
		b, _ := os.ReadFile(filepath.Join(filepath.Dir(dir), fmt.Sprintf("child-%d.log", k)))
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "level=ERROR") {
				errs = append(errs, fmt.Sprintf("process %d: %.300s", k, l))
			}
		}
	}
	t.Logf("%d ERROR lines in the processes' logs: %v", len(errs), errs[:min(len(errs), 5)])
}

// logLinesAbout returns the lines of the child processes' logs (under
// dir) that name one of ids, a few per receipt, so that a failure of the
// crash test says what the worker did about them.
func logLinesAbout(dir string, kills int, ids []string) string {
	var out []string
	for _, id := range ids {
		n := 0
		for k := 0; k <= kills && n < 12; k++ {
			b, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("child-%d.log", k)))
			for _, l := range strings.Split(string(b), "\n") {
				if strings.Contains(l, id) && n < 12 {
					out = append(out, fmt.Sprintf("process %d: %.400s", k, l))
					n++
				}
			}
		}
		if n == 0 {
			out = append(out, "no line names "+id)
		}
	}
	// Where each worker resumed following the ledger, and its warnings.
	for k := 1; k <= kills; k++ {
		b, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("child-%d.log", k)))
		n := 0
		for _, l := range strings.Split(string(b), "\n") {
			if (strings.Contains(l, "following the ledger") || strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR")) && n < 8 {
				out = append(out, fmt.Sprintf("process %d: %.400s", k, l))
				n++
			}
		}
	}
	return strings.Join(out, "\n")
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func pcts(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	slices.Sort(ds)
	q := func(p int) time.Duration { return ds[(len(ds)-1)*p/100].Round(10 * time.Millisecond) }
	return fmt.Sprintf("p50 %v p90 %v max %v (n=%d)", q(50), q(90), q(100), len(ds))
}

func postTo(t *testing.T, ci childInfo, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", ci.Gateway+"/v1/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+ci.APIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func outboxLen(t *testing.T, dir string) int {
	ents, err := os.ReadDir(filepath.Join(dir, "worker", "outbox"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".json") {
			n++
		}
	}
	return n
}

func accountBalance(t *testing.T, c *client.Client, a ledger.Address) uint64 {
	t.Helper()
	acct, err := c.Account(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	return acct.Balance
}

// fundChallengers funds and bonds n accounts from the faucet, each enough
// to open one dispute.
func fundChallengers(t *testing.T, c *client.Client, dir string, n int, p ledger.Params) []*client.Sender {
	t.Helper()
	ctx := context.Background()
	faucet, err := keys.Load(filepath.Join(dir, "ledger", node.FaucetFile))
	if err != nil {
		t.Fatal(err)
	}
	fs, err := client.NewSender(c, faucet.Private, 1)
	if err != nil {
		t.Fatal(err)
	}
	var out []*client.Sender
	for i := range n {
		_, priv, _ := ed25519.GenerateKey(nil)
		s, err := client.NewSender(c, priv, 1)
		if err != nil {
			t.Fatal(err)
		}
		if r, err := fs.Commit(ctx, &ledger.MsgSend{To: s.Address(), Amount: 10 * p.MinVerifierStake}); err != nil || r.Code != 0 {
			t.Fatalf("funding challenger %d: %+v %v", i, r, err)
		}
		if r, err := s.Commit(ctx, &ledger.MsgBond{Amount: 5 * p.MinVerifierStake}); err != nil || r.Code != 0 {
			t.Fatalf("bonding challenger %d: %+v %v", i, r, err)
		}
		out = append(out, s)
	}
	return out
}

// challenge opens a dispute, committing to a root that is not the
// worker's, on the latest of the receipts answered returns (in the order
// answered) that is published and not yet final.
func challenge(t *testing.T, c *client.Client, s *client.Sender, answered func() []string) {
	t.Helper()
	ctx := context.Background()
	var rid ledger.Hash
	var ids []string
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		// The answers so far, read afresh: the latest may wait behind a
		// publishing backlog while newer ones come.
		ids = answered()
		for i := len(ids) - 1; i >= 0 && i >= len(ids)-2000; i -= 20 {
			id, err := ledger.ParseHash(ids[i])
			if err != nil {
				t.Fatal(err)
			}
			rec, found, err := c.Receipt(ctx, id)
			if err != nil || !found {
				continue
			}
			if h, err := c.Height(ctx); err == nil && rec.Status == ledger.StatusPublished && int64(rec.WindowEnd) > h+5 {
				rid = id
			}
			break // older receipts were published earlier
		}
		if rid != (ledger.Hash{}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("none of the last %d answers published in 60 s", min(len(ids), 2000))
		}
	}
	root := make([]byte, 32)
	root[0] = 0x5a
	if r, err := s.Commit(ctx, &ledger.MsgOpenDispute{ReceiptID: rid, Commitment: root}); err != nil || r.Code != 0 {
		t.Fatalf("opening a dispute on %s: %+v %v", rid, r, err)
	}
}

// scanner reads every block's events (those of failed transactions
// included: a failed transaction pays its fee) with the ledger's typed
// decoders.
type scanner struct {
	rpc    *rpchttp.HTTP
	next   int64
	counts map[ledger.EventType]int // events read, by type
	flows  []flow                   // what the events moved in or out of a balance

	published map[string]string  // receipt id to escrow id
	final     map[string]finalEv // receipt id
	escrows   map[string]bool    // opened, to settled
	audits    []int64            // blocks from selection to openings
	slow      []string           // the audits and answers that took half their window or more
	moves     []int64            // blocks from a dispute's opening to the worker's first answer
	selected  map[string]int64   // audit receipt id to selection height
	opened    map[string]int64   // dispute id to opening height
	slashed   []string
	bad       []string
	badIDs    []string // receipts of the audits in bad
	lastFinal time.Time
}

type finalEv struct {
	fee, protocolFee uint64
	at               time.Time // the block's time
}

// flow is what one event moved into (in) or out of (out) an account's
// balance at a height.
type flow struct {
	height  int64
	typ     ledger.EventType
	account ledger.Address
	in, out uint64
}

// scan reads the blocks committed since the last call.
func (s *scanner) scan(ctx context.Context) error {
	info, err := s.rpc.ABCIInfo(ctx)
	if err != nil {
		return err
	}
	if s.selected == nil {
		s.selected, s.opened, s.counts = map[string]int64{}, map[string]int64{}, map[ledger.EventType]int{}
	}
	for ; s.next <= info.Response.LastBlockHeight; s.next++ {
		h := s.next
		r, err := s.rpc.BlockResults(ctx, &h)
		if err != nil {
			return fmt.Errorf("block results %d: %w", h, err)
		}
		var evs []client.Event
		for _, tr := range r.TxsResults {
			for _, e := range tr.Events {
				ev := client.EventOf(h, e, nil)
				if tr.Code != 0 && ev.Type != ledger.EventTx {
					continue
				}
				evs = append(evs, ev)
			}
		}
		for _, e := range r.FinalizeBlockEvents {
			evs = append(evs, client.EventOf(h, e, nil))
		}
		var at time.Time
		for _, ev := range evs {
			if err := s.read(ctx, h, ev, &at); err != nil {
				return fmt.Errorf("height %d: %w", h, err)
			}
			s.counts[ev.Type]++
		}
	}
	return nil
}

// read takes in one event of block h (at: the block's time, read once).
func (s *scanner) read(ctx context.Context, h int64, ev client.Event, at *time.Time) error {
	add := func(a ledger.Address, in, out uint64) {
		s.flows = append(s.flows, flow{height: h, typ: ev.Type, account: a, in: in, out: out})
	}
	switch ev.Type {
	case ledger.EventTx:
		p, err := ledger.DecodeTxEvent(ev.Event)
		if err != nil {
			return err
		}
		add(p.Signer, 0, p.Fee)
	case ledger.EventTransfer:
		t, err := ledger.DecodeTransfer(ev.Event)
		if err != nil {
			return err
		}
		add(t.To, t.Amount, 0)
		if t.From != t.To {
			add(t.From, 0, t.Amount)
		}
	case ledger.EventReward:
		p, err := ledger.DecodeReward(ev.Event)
		if err != nil {
			return err
		}
		add(p.Account, p.Amount, 0)
	case ledger.EventBond:
		b, err := ledger.DecodeBond(ev.Event)
		if err != nil {
			return err
		}
		add(b.Account, 0, b.Amount)
	case ledger.EventUnbondComplete:
		u, err := ledger.DecodeUnbondComplete(ev.Event)
		if err != nil {
			return err
		}
		add(u.Account, u.Amount, 0)
	case ledger.EventEscrowOpened:
		o, err := ledger.DecodeEscrowOpened(ev.Event)
		if err != nil {
			return err
		}
		s.escrows[o.EscrowID.String()] = false
		add(o.Requester, 0, o.Fee)
	case ledger.EventEscrowRefunded:
		f, err := ledger.DecodeEscrowRefunded(ev.Event)
		if err != nil {
			return err
		}
		s.escrows[f.EscrowID.String()] = true
		add(f.Requester, f.Fee, 0)
	case ledger.EventEscrowSettled:
		// An upto escrow's receipt cost less than the fee escrowed: the
		// rest went back to the requester.
		f, err := ledger.DecodeEscrowSettled(ev.Event)
		if err != nil {
			return err
		}
		add(f.Requester, f.Refund, 0)
	case ledger.EventReceiptPublished:
		p, err := ledger.DecodeReceiptPublished(ev.Event)
		if err != nil {
			return err
		}
		s.published[p.ReceiptID.String()] = p.EscrowID.String()
	case ledger.EventReceiptFinal:
		f, err := ledger.DecodeReceiptFinal(ev.Event)
		if err != nil {
			return err
		}
		if at.IsZero() {
			b, err := s.rpc.Block(ctx, &h)
			if err != nil {
				return fmt.Errorf("block %d: %w", h, err)
			}
			*at = b.Block.Time
		}
		id := f.ReceiptID.String()
		s.final[id] = finalEv{f.Fee, f.ProtocolFee, *at}
		s.escrows[s.published[id]] = true
		s.lastFinal = *at
		add(f.Worker, f.Fee-f.ProtocolFee, 0)
	case ledger.EventAuditSelected:
		a, err := ledger.DecodeAuditSelected(ev.Event)
		if err != nil {
			return err
		}
		s.selected[a.ReceiptID.String()] = h
	case ledger.EventAuditPassed:
		a, err := ledger.DecodeAuditOutcome(ev.Event)
		if err != nil {
			return err
		}
		h0 := s.selected[a.ReceiptID.String()]
		s.audits = append(s.audits, h-h0)
		s.slow = append(s.slow, fmt.Sprintf("audit selected at %d answered at %d", h0, h))
	case ledger.EventAuditMissed, ledger.EventAuditFailed:
		a, err := ledger.DecodeAuditOutcome(ev.Event)
		if err != nil {
			return err
		}
		s.bad = append(s.bad, fmt.Sprintf("height %d: %+v (selected at %d)", h, a, s.selected[a.ReceiptID.String()]))
		s.badIDs = append(s.badIDs, a.ReceiptID.String())
	case ledger.EventDisputeOpened:
		d, err := ledger.DecodeDisputeOpened(ev.Event)
		if err != nil {
			return err
		}
		s.opened[d.DisputeID.String()] = h
	case ledger.EventDisputeMove:
		m, err := ledger.DecodeDisputeMove(ev.Event)
		if err != nil {
			return err
		}
		if m.From == ledger.SideWorker {
			if h0, ok := s.opened[m.DisputeID.String()]; ok {
				s.moves = append(s.moves, h-h0)
				s.slow = append(s.slow, fmt.Sprintf("dispute opened at %d answered at %d", h0, h))
				delete(s.opened, m.DisputeID.String())
			}
		}
	case ledger.EventDisputeSettled:
		d, err := ledger.DecodeDisputeSettled(ev.Event)
		if err != nil {
			return err
		}
		if d.Status != ledger.DisputeChallengerLost {
			s.bad = append(s.bad, fmt.Sprintf("height %d: %s %+v", h, ev.Type, d))
		}
		if _, open := s.opened[d.DisputeID.String()]; open {
			s.bad = append(s.bad, fmt.Sprintf("height %d: dispute %s settled without the worker's answer", h, d.DisputeID))
		}
	case ledger.EventSlash:
		sl, err := ledger.DecodeSlash(ev.Event)
		if err != nil {
			return err
		}
		s.slashed = append(s.slashed, sl.Account.String())
	}
	return nil
}

func (s *scanner) openEscrows() int {
	n := 0
	for _, settled := range s.escrows {
		if !settled {
			n++
		}
	}
	return n
}

func (s *scanner) count(typ ledger.EventType) int { return s.counts[typ] }

// sum adds up what the events typ moved into and out of account a's
// balance.
func (s *scanner) sum(typ ledger.EventType, a ledger.Address) (in, out uint64) {
	for _, f := range s.flows {
		if f.typ == typ && f.account == a {
			in += f.in
			out += f.out
		}
	}
	return in, out
}

// balance is what the events up to height h leave in account a's balance
// (which starts at zero: the accounts here are not in genesis): transfers,
// transaction fees, escrows opened, refunded and settled below their fee,
// payouts less the protocol fee, rewards, bonds and unbondings.
func (s *scanner) balance(a ledger.Address, h int64) uint64 {
	var in, out uint64
	for _, f := range s.flows {
		if f.height <= h && f.account == a {
			in += f.in
			out += f.out
		}
	}
	return in - out
}

func worst(blocks []int64) int64 { return slices.Max(append([]int64{0}, blocks...)) }
