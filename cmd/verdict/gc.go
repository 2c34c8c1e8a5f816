package main

import (
	"os"
	"runtime/debug"
)

// ModelGCPercent is the garbage collector's GOGC for the commands that hold
// a model, unless the GOGC or GOMEMLIMIT environment variable is set. A
// model's weights are a file mapping, outside the Go heap; the heap is the
// vocabulary, the activation buffers and the KV caches, all of them long
// lived, and a decode step's garbage (its logit vectors) is small. With Go's
// default of 100 the heap grows to twice its live size before a
// collection: on the Llama 3.2 1B shape (a live heap of 24-40 MB) that was
// 20-25 MB of peak resident memory for garbage alone (docs/benchmarks.md,
// peak resident memory). With 15 a 64-token decode makes 26-27 collections
// instead of 19-20 with 25; its tokens per CPU second moved by less than
// the spread of the measurement (1-2%).
const ModelGCPercent = 15

// modelGC sets the collector for a process that holds a model.
func modelGC() {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetGCPercent(ModelGCPercent)
}
