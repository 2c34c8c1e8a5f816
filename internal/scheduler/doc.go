// Package scheduler runs many generations on one engine as a continuous
// batch: every step is one engine.Forward over the next token of each
// running sequence and a chunk of the prompts of newcomers. A request joins
// at the next step once there is room, and leaves as soon as it ends, is
// cancelled, or its caller stops reading.
//
// The engine is batch-invariant (engine.Forward gives every position the same
// bits whatever else is in the batch, and however a prompt is split into
// chunks), so Run returns exactly what generate.Run returns for the same
// request alone: the same tokens, the same logit vectors, the same trace.
//
// Room is counted in key/value cache: each running sequence holds, of the
// stated budget, the bytes of the cache pages it has filled
// (engine.Engine.CacheBytes), and its prompt's from admission. A sequence
// that needs a page when the budget is full takes the room of cached
// prefixes, then preempts the latest admitted sequences waiting for a step:
// they give up their caches and, once there is room, are fed their tokens
// again, untraced and without logits, before going on — a position's keys
// and values depend only on the tokens up to it, so the answer does not
// change. The earliest admitted sequence always has room, so every request
// ends; newcomers wait while a preempted sequence does. When the budget or
// the batch is full, requests wait in a bounded queue; beyond it Run
// fails with ErrBusy at once — unless another account has more requests
// waiting than the newcomer's would, whose latest then fails with ErrBusy
// in its place. The queue takes turns between accounts
// (generate.Request.Account): of those waiting, the account with the
// fewest requests running, then the one admitted least recently, goes
// first, its requests in arrival order — one account's backlog neither
// holds up the others nor keeps them out. A request whose prompt and most tokens could
// never fit fails with ErrTooLarge, naming the limit.
//
// The per-token work of a request (its logits callback, sampling, its token
// callback: receipts' hashing, logprobs, stop strings, streaming) runs on
// the caller's goroutine, in parallel with the other callers'; the step
// after waits for every running request to hand over its next token, up to
// Config.MaxWait and never longer than the last step took, and goes on
// without the late ones (they join the step after). Meanwhile the engine's
// threads sleep (engine.Engine.Idle) rather than poll, leaving the CPU to
// that per-token work; within a step, the trace of each sequence is
// hashed on the engine's threads, several sequences at once. (The worker
// hands its logit vectors to a hashing goroutine that runs beside the next
// step, audit.Recorder.LogitsAsync, so that hashing them is not part of
// the wait.) A caller handing over its token wakes the scheduler only when
// it is the first of the step's to be ready or the last.
//
// A prefix cache (Config.PrefixCache, prefix.go): a generation that ends
// leaves its sequence, holding the keys and values of every position it
// fed, to the cache instead of the engine, with its tracer's trace of
// those positions (PrefixTracer); so does one whose caller leaves once its
// prompt is computed, before its first token (a retry of the prompt
// computes its last position only; one that leaves mid-prefill gives up
// what it fed, which a step may still be computing).
// generate.Result.PromptComputed counts the prompt positions handed to
// steps for a request, whatever its outcome. A later request whose prompt starts
// with at least minPrefix of those tokens is given the longest such
// prefix (engine.Sequence.SharePrefix, PrefixTracer.ResumePrefix) and fed
// only the rest: a position's keys, values and trace depend only on the
// tokens up to it, so its answer is what it would be computed from the
// first token (the engine's chunk invariance). The cache's bytes count
// against KVBudget and give way to running sequences, the least recently
// used first. The prompt's sequence shares the cached sequence's whole
// pages (reference counted by the engine, never written: the positions
// it feeds are past them) and copies the last, partial one; the shared
// pages count once, in the cache's bytes, and the cached prefix is pinned
// (not given up) while a sequence, or a cached prefix kept from one,
// shares them. The prefix a request takes is chosen when it is admitted
// (planLocked), pinned from then on, and the request asks for the room of
// its prompt but the pages it shares; one that does not fit beside its
// prefix is admitted without one. A sequence that alone pins its prefix
// and needs room takes the shared pages as its own, and the prefix may
// go (growLocked): the earliest sequence always finds its room. A
// preempted sequence takes its account's cached pages again when it
// resumes (reshareLocked). A request that took nothing at admission looks
// again at its first step (joinLocked): for a cached prefix kept since, or
// for a sequence admitted before it (of its account) whose positions, fed
// or being fed as its prompt, start its own prompt (at least minPrefix).
// Where the step's prompt budget left for it would not cover them (it goes
// in admission order: the earlier prompt takes it first), it waits, fed
// nothing, while that sequence computes them, then takes them from it
// (joinRunningLocked): the whole pages
// are published as a cached prefix that the sequence pins as if it had
// taken it (publishLocked: their bytes move from its room to the cache's)
// and shared, the rest copied, the trace taken from the sequence's tracer
// — a burst with a new system prompt computes it once. A generation kept
// whose cached prefix only it pins, and whose tokens it holds, takes that
// prefix's place (mergeLocked: a prefix it published for others, or a
// conversation's earlier turn); so does a kept one whose prefix's other
// sharers have gone since: a running one that left (unshareLocked), or a
// cached one given up to make room, such as another continuation of the
// same turn (mergeSolesLocked, after a keep and between steps).
//
// Built with -tags invariants (the race run of the tests in CI), the
// scheduler checks its accounting after every step and panics where it
// breaks (invariants.go).
//
// Draft tokens (Config.Speculate, draft.go): a generation may feed, after
// the token it sampled, the tokens that followed its last few where they
// occurred before (prompt lookup decoding); each the sampler picks in
// turn is taken with its logits, the first it does not ends the step's
// tokens and the sequence's position goes back to it. The same tokens,
// logits and trace as without drafts.
//
// Stats.Forward and Stats.Gap (the Prometheus histograms
// verdict_worker_step_forward_seconds and _step_gap_seconds) time each
// step's forward pass and the wait between steps while generations run.
package scheduler
