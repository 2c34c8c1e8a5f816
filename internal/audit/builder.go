package audit

import (
	"fmt"
	"os"

	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/modelid"
	"github.com/verdictnet/verdict/internal/receipt"
	"github.com/verdictnet/verdict/internal/sampler"
)

// Builder collects and signs the receipt of one generation, for
// `verdict run --key FILE --receipt OUT`: pass every logit vector to
// Logits, use Tracer as the generation's engine.Tracer, then call Finish.
type Builder struct {
	rec    *Recorder
	key    *keys.Key
	spec   string
	id     merkle.Hash
	params sampler.Params
	steps  int
	stop   []int
}

// NewBuilder loads the worker key and computes the model id under spec,
// the determinism spec of the generation's engine (engine.Engine.Spec).
// steps is the generation's requested step count (capped as generate.Run
// caps it) and stop its stop tokens.
func NewBuilder(keyFile string, m *model.Model, spec string, prompt []int, p sampler.Params, steps int, stop []int) (*Builder, error) {
	k, err := keys.Load(keyFile)
	if err != nil {
		return nil, err
	}
	id, err := modelid.OfSpec(m, spec)
	if err != nil {
		return nil, err
	}
	return &Builder{rec: NewRecorder(m.Config, prompt), key: k, spec: spec, id: id, params: p,
		steps: EffectiveSteps(steps, m.Config.ContextLen), stop: append([]int(nil), stop...)}, nil
}

// Logits records the logit vector computed at position pos.
func (b *Builder) Logits(pos int, logits []float32) { b.rec.Logits(pos, logits) }

// Tracer returns the tracer to pass to the generation.
func (b *Builder) Tracer() engine.Tracer { return b.rec }

// Finish signs the receipt for the generated output and, when path is not
// empty, writes it there (canonical JSON, no trailing newline).
func (b *Builder) Finish(output []int, path string) (*receipt.Receipt, error) {
	r, err := b.rec.Receipt(b.id, b.spec, b.params, b.steps, b.stop, output, nil, b.key)
	if err != nil {
		return nil, fmt.Errorf("receipt: %w", err)
	}
	enc, err := r.Marshal()
	if err != nil {
		return nil, err
	}
	if path != "" {
		if err := os.WriteFile(path, enc, 0o644); err != nil {
			return nil, fmt.Errorf("writing receipt: %w", err)
		}
	}
	return r, nil
}
