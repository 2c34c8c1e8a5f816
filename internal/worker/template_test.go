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

func TestChatTemplateDetected(t *testing.T) {
	src := testutil.Shared(t, "models/stories260K.gguf")
	for _, tc := range []struct {
		tmpl string
		want chat.Template
	}{
		{"{{ bos_token }}{% for m in messages %}[INST] {{ m.content }} [/INST]{% endfor %}", chat.Llama2},
		{"{% for m in messages %}{{ m.content }}{% endfor %}", chat.Plain},
	} {
		w, err := Open(Config{ModelPath: withChatTemplate(t, src, tc.tmpl), Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		info := w.Models()[0]
		if info.Template != tc.want || info.Name != "chat" {
			t.Errorf("template %v name %q, want %v", info.Template, info.Name, tc.want)
		}
		// The model id does not depend on metadata outside the commitment.
		if ref := testWorker(t).Models()[0].ID; info.ID != ref {
			t.Errorf("model id %s, want %s", info.ID, ref)
		}
		// Two Llama-2 turns: BOS, turn, EOS, BOS, turn.
		segs, err := info.Template.Render([]chat.Message{{Role: "user", Content: "Hi"}, {Role: "assistant", Content: "Hello"}, {Role: "user", Content: "Bye"}})
		if err != nil {
			t.Fatal(err)
		}
		req := Request{Segments: segs}
		toks, err := w.Prompt(&req)
		if err != nil {
			t.Fatal(err)
		}
		bos, eos := w.m.Vocab.BOS, w.m.Vocab.EOS
		nb, ne := 0, 0
		for _, x := range toks {
			if x == bos {
				nb++
			}
			if x == eos {
				ne++
			}
		}
		if toks[0] != bos || nb != len(segs) || ne != len(segs)-1 {
			t.Errorf("%v: prompt %v has %d BOS and %d EOS for %d segments", tc.want, toks, nb, ne, len(segs))
		}
		w.Close()
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
		w.mu.Lock()
		n := w.waiting
		w.mu.Unlock()
		if n == 1 {
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
