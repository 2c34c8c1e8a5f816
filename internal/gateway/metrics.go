package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the gateway's Prometheus collectors.
type metrics struct {
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	ttft      prometheus.Histogram
	tokens    *prometheus.CounterVec
	receipts  prometheus.Counter
	replays   prometheus.Counter
	inFlight  prometheus.Gauge
	generated *prometheus.HistogramVec
	// abandonedPrefill counts the prompt positions computed for
	// generations abandoned before their first token, prefillRefused the
	// requests refused for it (prefill.go).
	abandonedPrefill prometheus.Counter
	prefillRefused   prometheus.Counter
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verdict_gateway_requests_total", Help: "HTTP requests by endpoint and status code.",
		}, []string{"endpoint", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "verdict_gateway_request_duration_seconds", Help: "Request latency by endpoint.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14),
		}, []string{"endpoint"}),
		ttft: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "verdict_gateway_time_to_first_token_seconds", Help: "Time from request to the first streamed token.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14),
		}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verdict_gateway_tokens_total", Help: "Tokens processed, by kind (prompt, completion, or replayed: billed receipt replays).",
		}, []string{"kind"}),
		receipts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "verdict_gateway_receipts_total", Help: "Signed receipts returned for completions.",
		}),
		replays: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "verdict_gateway_idempotent_replays_total", Help: "Responses served again for a repeated Idempotency-Key.",
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "verdict_gateway_requests_in_flight", Help: "Requests being served.",
		}),
		generated: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "verdict_gateway_completion_tokens", Help: "Completion tokens per request.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 13),
		}, []string{"finish_reason"}),
		abandonedPrefill: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "verdict_gateway_abandoned_prefill_positions_total", Help: "Prompt positions computed for generations whose caller went away before their first token (unpaid).",
		}),
		prefillRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "verdict_gateway_abandoned_prefill_refusals_total", Help: "Requests refused (429) because their caller's abandoned prefills were over its budget.",
		}),
	}
	reg.MustRegister(m.abandonedPrefill, m.prefillRefused, m.requests, m.latency, m.ttft, m.tokens, m.receipts, m.replays, m.inFlight, m.generated,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
