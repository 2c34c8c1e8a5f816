package modelid

import (
	"bytes"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/engine"
)

// TestSpecChangesID: the same weights under the binary16 key/value cache
// (engine.SpecKV16) compute other logits, so they get another id, whose
// manifest differs in its spec line only; ComputeSpecs gives what
// ComputeSpec gives for each spec; a spec the engine does not implement
// has no id.
func TestSpecChangesID(t *testing.T) {
	m := load(t, "stories260K.gguf", "")
	both, err := ComputeSpecs(m, engine.SpecVersion, engine.SpecKV16)
	if err != nil {
		t.Fatal(err)
	}
	def := id(t, m)
	kv16, err := ComputeSpec(m, engine.SpecKV16)
	if err != nil {
		t.Fatal(err)
	}
	if both[0].Root != def.Root || both[1].Root != kv16.Root || def.Root == kv16.Root {
		t.Fatalf("ids: %s and %s together, %s and %s alone (the two must differ)", both[0].Root, both[1].Root, def.Root, kv16.Root)
	}
	if got, err := OfSpec(m, engine.SpecKV16); err != nil || got != kv16.Root {
		t.Fatalf("OfSpec: %s, %v; want %s", got, err, kv16.Root)
	}
	want := bytes.Replace(def.Manifest, []byte("\nspec "+engine.SpecVersion+"\n"), []byte("\nspec "+engine.SpecKV16+"\n"), 1)
	if !bytes.Equal(kv16.Manifest, want) || kv16.Layout.Spec != engine.SpecKV16 {
		t.Fatalf("binary16 manifest:\n%s\nwant the default one with its spec line changed:\n%s", kv16.Manifest, want)
	}
	if _, err := ComputeSpec(m, "verdict-det/1"); err == nil || !strings.Contains(err.Error(), "verdict-det/1") {
		t.Fatalf("an unknown spec: %v", err)
	}
}
