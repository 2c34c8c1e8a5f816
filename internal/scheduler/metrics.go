package scheduler

import "github.com/prometheus/client_golang/prometheus"

// Collector exposes a scheduler's Stats to Prometheus (names under
// verdict_worker_): the batch size, the running and queued requests, the
// key/value cache used and budgeted, preemptions, the steps and tokens processed, and
// the recent decode rate, the prefix cache, and histograms of the steps' forward time and of
// the gaps between steps.
type Collector struct {
	stats func() Stats
	descs map[string]*prometheus.Desc
}

// NewCollector returns a collector reading stats (e.g. Scheduler.Stats)
// at every scrape.
func NewCollector(stats func() Stats) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("verdict_worker_"+name, help, labels, nil)
	}
	return &Collector{stats: stats, descs: map[string]*prometheus.Desc{
		"batch":     d("batch_size", "Sequences in the last forward step of the continuous batch."),
		"peak":      d("batch_size_peak", "Most sequences in one forward step since the start."),
		"max":       d("batch_size_max", "Most sequences the batch admits (--concurrency)."),
		"running":   d("batch_running", "Generations admitted to the batch and not yet ended."),
		"queued":    d("queue_length", "Generations waiting for room in the batch."),
		"kvUsed":    d("kv_cache_used_bytes", "Key/value cache held by running generations."),
		"kvBudget":  d("kv_cache_budget_bytes", "Key/value cache budget (--kv-budget-mib)."),
		"steps":     d("batch_steps_total", "Forward steps of the batch."),
		"tokens":    d("batch_tokens_total", "Tokens processed by the batch, by kind (prompt: prefilled; completion: generated; recomputed: fed again by generations that gave up their cache to earlier ones).", "kind"),
		"preempted": d("preemptions_total", "Times a running generation gave up its key/value cache to an earlier one that needed room in the budget (it computes it again later, with the same answer)."),
		"resuming":  d("batch_resuming", "Preempted generations waiting for room to compute their cache again."),
		"rate":      d("decode_tokens_per_second", "Generated tokens per second over recent steps (0 when idle)."),
		"forward":   d("step_forward_seconds", "Wall time of each batch step's forward pass (all its sequences together)."),
		"pcBytes":   d("prefix_cache_bytes", "Key/value cache kept by finished generations for prompts that start with their tokens (the prefix cache)."),
		"pcEntries": d("prefix_cache_entries", "Finished generations' caches the prefix cache keeps."),
		"pcBudget":  d("prefix_cache_budget_bytes", "Most of the key/value cache budget the prefix cache keeps (--prefix-cache-mib)."),
		"pcHits":    d("prefix_cache_hits_total", "Generations that took a cached prefix."),
		"pcTokens":  d("prefix_cache_tokens_total", "Prompt tokens taken from the prefix cache instead of computed."),
		"pcShared":  d("prefix_cache_shared_bytes", "Key/value cache of the prefix cache that running generations share (held once, not copied into each)."),
		"pcSharedT": d("prefix_cache_shared_tokens_total", "Prompt tokens taken from the prefix cache in whole cache pages shared with it rather than copied."),
		"joined":    d("prefix_cache_joined_tokens_total", "Prompt tokens generations took at their first step rather than at admission, most from an earlier generation still prefilling the same prompt start (its whole pages shared, instead of computing them twice)."),
		"reshared":  d("prefix_cache_reshared_tokens_total", "Tokens a preempted generation took again from the prefix cache's shared pages when it resumed, instead of computing them again."),
		"drafts":    d("draft_tokens_total", "Draft tokens fed after sampled ones (--speculate), by result (accepted: the sampler picked it, a step saved; rejected).", "result"),
		"gap":       d("step_gap_seconds", "Wall time from the end of one step's forward pass to the start of the next while generations run: the callers' per-token work (logit hashing, sampling, streaming) and the wait for it, when the engine computes nothing."),
	}}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	g := func(k string, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(c.descs[k], prometheus.GaugeValue, v, labels...)
	}
	n := func(k string, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(c.descs[k], prometheus.CounterValue, v, labels...)
	}
	g("batch", float64(s.Batch))
	g("peak", float64(s.PeakBatch))
	g("max", float64(s.MaxBatch))
	g("running", float64(s.Running))
	g("queued", float64(s.Queued))
	g("kvUsed", float64(s.KVUsed))
	g("kvBudget", float64(s.KVBudget))
	n("steps", float64(s.Steps))
	n("tokens", float64(s.PromptTokens), "prompt")
	n("tokens", float64(s.OutputTokens), "completion")
	n("tokens", float64(s.Recomputed), "recomputed")
	n("preempted", float64(s.Preempted))
	g("resuming", float64(s.Resuming))
	g("rate", s.DecodeRate)
	g("pcBytes", float64(s.PrefixBytes))
	g("pcEntries", float64(s.PrefixEntries))
	g("pcBudget", float64(s.PrefixCap))
	n("pcHits", float64(s.PrefixHits))
	n("pcTokens", float64(s.PrefixTokens))
	g("pcShared", float64(s.PrefixShared))
	n("pcSharedT", float64(s.PrefixSharedTokens))
	n("joined", float64(s.PrefixJoinedTokens))
	n("reshared", float64(s.Reshared))
	n("drafts", float64(s.Accepted), "accepted")
	n("drafts", float64(s.Drafted-s.Accepted), "rejected")
	h := func(k string, v Histogram) {
		buckets := make(map[float64]uint64, len(StepBounds))
		var cum uint64
		for i, b := range StepBounds {
			if i < len(v.Counts) {
				cum += v.Counts[i]
			}
			buckets[b] = cum
		}
		ch <- prometheus.MustNewConstHistogram(c.descs[k], v.Count, v.Sum, buckets)
	}
	h("forward", s.Forward)
	h("gap", s.Gap)
}
