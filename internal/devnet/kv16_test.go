package devnet

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
	"github.com/verdictnet/verdict/internal/modelid"
	"github.com/verdictnet/verdict/internal/synth"
	"github.com/verdictnet/verdict/internal/worker"
)

// TestKV16Devnet runs the devnet with the binary16 key/value cache: the
// worker serves the built-in model under its id for engine.SpecKV16, which
// the validator holds and attests to, and the verifier replays its
// receipts exactly under that spec until they become final.
func TestKV16Devnet(t *testing.T) {
	d := start(t, Options{KV: engine.KVF16})
	if d.Model.Spec != engine.SpecKV16 {
		t.Fatalf("devnet serves spec %q", d.Model.Spec)
	}
	if id, err := modelid.Of(d.Worker.Model()); err != nil || id == d.Model.ID {
		t.Fatalf("binary16 id %s equals the float32 one (%v)", d.Model.ID, err)
	}
	waitStatus(t, d, chatReceipt(t, d), 60*time.Second, ledger.StatusFinal)
	if s := d.Verifier.Stats(); s.Replayed < 1 || s.Mismatches != 0 {
		t.Fatalf("verifier stats %+v: want an exact replay", s)
	}
}

// TestKV16BesideF32 joins a binary16 worker to a float32 devnet serving
// the same weights: another spec, so another model id, which the ledger
// holds under a name of its own. Under the float32 model's name its
// registration is refused (the name designates one model: a caller asking
// for it never gets the other spec's work) with an error saying what to
// do, and nothing is registered; under its default name (the file's, with
// "+kv16") it joins.
func TestKV16BesideF32(t *testing.T) {
	d := start(t, Options{})
	ctx := context.Background()
	path := d.Worker.Model().Path
	id16, err := modelid.OfSpec(d.Worker.Model(), engine.SpecKV16)
	if err != nil {
		t.Fatal(err)
	}
	join := func(name string) (*worker.Local, error) {
		k, err := keys.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if err := fund(ctx, d.Client, d.Faucet, map[*keys.Key]uint64{k: 1_000_000}); err != nil {
			t.Fatal(err)
		}
		w, err := worker.Open(worker.Config{ModelPath: path, Name: name, Threads: 1, Key: k, KV: engine.KVF16})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Close() })
		c, err := worker.NewChain(w, worker.ChainConfig{Client: d.Client, RPC: d.RPC, Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		return w, c.Setup(ctx)
	}
	_, err = join(d.Model.Name)
	if code, _ := client.ErrorCode(err); code != ledger.Code(ledger.ErrNameTaken) || !strings.Contains(err.Error(), "--name") {
		t.Fatalf("binary16 worker under the float32 model's name %q: %v", d.Model.Name, err)
	}
	if _, found, err := d.Client.Model(ctx, ledger.Hash(id16)); err != nil || found {
		t.Fatalf("refused registration registered the model (found %v, %v)", found, err)
	}
	w, err := join("")
	if err != nil {
		t.Fatal(err)
	}
	want := synth.BuiltinName + "+kv16"
	if mi := w.Models()[0]; mi.Name != want || mi.ID != id16 {
		t.Fatalf("serves %s as %q, want %s as %q", mi.ID, mi.Name, id16, want)
	}
	if m, found, err := d.Client.Model(ctx, ledger.Hash(id16)); err != nil || !found || m.Name != want {
		t.Fatalf("ledger holds %+v (found %v, %v), want the name %q", m, found, err, want)
	}
}
