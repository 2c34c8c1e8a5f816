package worker

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/chat"
	"github.com/verdictnet/verdict/internal/gguf"
	"github.com/verdictnet/verdict/internal/testutil"
)

// withChatTemplate copies a GGUF, adding tokenizer.chat_template.
func withChatTemplate(t *testing.T, src, tmpl string) string {
	t.Helper()
	f, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kvs := append(slices.Clone(f.KV), gguf.KV{Key: "tokenizer.chat_template", Value: gguf.String(tmpl)})
	var ts []gguf.TensorData
	for _, ti := range f.Tensors {
		start := f.DataOffset + ti.Offset
		ts = append(ts, gguf.TensorData{Name: ti.Name, Type: ti.Type, Dims: ti.Dims, Data: f.Data[start : start+ti.Size]})
	}
	dst := filepath.Join(t.TempDir(), "chat.gguf")
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if err := gguf.Write(out, kvs, ts); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// The worker renders the GGUF's own chat template; control tokens that the
// template writes (bos_token, eos_token) are tokens, the same texts in a
// message are not.
func TestChatTemplateFromGGUF(t *testing.T) {
	src := testutil.Shared(t, "models/stories260K.gguf")
	tmpl := "{% for m in messages %}{{ bos_token }}[INST] {{ m.content }} [/INST]{% if m.role == 'assistant' %}{{ eos_token }}{% endif %}{% endfor %}"
	w, err := Open(Config{ModelPath: withChatTemplate(t, src, tmpl), Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	info := w.Models()[0]
	if info.Template.Source() != tmpl || info.Template.Name() != "gguf" || info.Name != "chat" {
		t.Errorf("template %s %q, name %q", info.Template.Name(), info.Template.Source(), info.Name)
	}
	// The model id does not depend on metadata outside the commitment.
	if ref := testWorker(t).Models()[0].ID; info.ID != ref {
		t.Errorf("model id %s, want %s", info.ID, ref)
	}
	bos, eos := w.m.Vocab.BOS, w.m.Vocab.EOS
	for _, tc := range []struct {
		msgs   []chat.Message
		nb, ne int
	}{
		{[]chat.Message{{Role: "user", Content: "Hi"}, {Role: "assistant", Content: "Hello"}, {Role: "user", Content: "Bye"}}, 3, 1},
		{[]chat.Message{{Role: "user", Content: "Hi</s><s>"}, {Role: "assistant", Content: "<s>Hello"}}, 2, 1},
	} {
		p, err := info.Template.Render(&chat.Request{Messages: tc.msgs})
		if err != nil {
			t.Fatal(err)
		}
		toks, err := w.Prompt(&Request{Chat: p})
		if err != nil {
			t.Fatal(err)
		}
		nb, ne := 0, 0
		for _, x := range toks {
			if x == bos {
				nb++
			}
			if x == eos {
				ne++
			}
		}
		if toks[0] != bos || nb != tc.nb || ne != tc.ne {
			t.Errorf("%q: prompt %v has %d BOS and %d EOS, want %d and %d", p.Text(), toks, nb, ne, tc.nb, tc.ne)
		}
	}
	// Without a template: the plain built-in, whose prompt is what the
	// raw text with BOS gives.
	plain := testWorker(t)
	if plain.Models()[0].Template.Name() != chat.PlainName {
		t.Errorf("template %s, want plain", plain.Models()[0].Template.Name())
	}
	p, err := plain.Models()[0].Template.Render(&chat.Request{Messages: []chat.Message{{Role: "user", Content: "Once upon"}, {Role: "user", Content: "a time"}}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := plain.Prompt(&Request{Chat: p})
	if err != nil {
		t.Fatal(err)
	}
	want, err := plain.Prompt(&Request{Segments: []chat.Segment{{Text: "Once upon\na time", BOS: true}}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("plain chat prompt %v, raw text %v", got, want)
	}
}

// Generations beyond MaxConcurrent wait, and beyond MaxQueue are refused.
func TestBusy(t *testing.T) {
	w, err := Open(Config{ModelPath: testutil.Shared(t, "models/stories260K.gguf"), Threads: 1, MaxConcurrent: 1, MaxQueue: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	started, release := make(chan struct{}), make(chan struct{})
	errc := make(chan error, 2)
	go func() {
		first := true
		_, err := w.Generate(context.Background(), textReq("Once", 5), func(Delta) error {
			if first {
				first = false
				close(started)
				<-release
			}
			return nil
		})
		errc <- err
	}()
	<-started
	go func() { _, err := w.Generate(context.Background(), textReq("Once", 5), nil); errc <- err }()
	// Wait until the second one is queued, then a third is refused.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if w.BatchStats().Queued == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("second generation never queued")
		}
	}
	if _, err := w.Generate(context.Background(), textReq("Once", 5), nil); !errors.Is(err, ErrBusy) {
		t.Errorf("third generation: %v, want ErrBusy", err)
	}
	// A request whose context is already cancelled fails.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	close(release)
	for range 2 {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
	if _, err := w.Generate(ctx, textReq("Once", 5), nil); err == nil {
		t.Error("cancelled generation succeeded")
	}
}
