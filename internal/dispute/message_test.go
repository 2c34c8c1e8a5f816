package dispute

import (
	"bytes"
	"errors"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/merkle"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// TestTranscript records a whole game (5 cells, B deviates at cell 3) as
// test vectors: one canonical message per line, queries and answers in
// delivery order.
func TestTranscript(t *testing.T) {
	honest := honestTrace(5)
	lies := liarTrace(honest, 3, "consistent", rand.New(rand.NewPCG(7, 7)))
	ta, pa := responder(A, honest)
	tb, pb := responder(B, lies)
	ref := &toyReferee{}
	m, qs, err := New(Config{Cells: 5, Roots: [2]merkle.Hash{ta.Root(), tb.Root()}, Timeout: 10}, ref, 1)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for len(qs) > 0 {
		q := qs[0]
		b, _ := q.Marshal()
		buf.Write(append(b, '\n'))
		qs = nil
		for _, p := range []player{pa, pb} {
			for _, a := range p(q) {
				b, _ := a.Marshal()
				buf.Write(append(b, '\n'))
				out, err := m.Step(a)
				if err != nil && !errors.Is(err, ErrIgnored) {
					t.Fatal(err)
				}
				qs = append(qs, out...)
			}
		}
	}
	out := m.Outcome()
	if out.Lost[A] || !out.Lost[B] || out.Cell != 3 || m.Rounds() != 4 {
		t.Fatalf("outcome %+v rounds %d", out, m.Rounds())
	}
	path := filepath.Join("testdata", "transcript.jsonl")
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, buf.Bytes()) {
		t.Fatalf("transcript differs from %s (run with -update if the format changed on purpose):\n%s", path, buf.Bytes())
	}
	// Every line parses back to itself.
	for _, line := range strings.Split(strings.TrimSpace(string(want)), "\n") {
		if _, err := ParseMessage([]byte(line)); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
	}
}

func TestParseMessageRejects(t *testing.T) {
	h := merkle.LeafHash(nil).String()
	cases := []struct{ name, data string }{
		{"empty", ``},
		{"not json", `x`},
		{"unknown kind", `{"kind":"x","from":0,"round":1,"start":0,"end":2}`},
		{"unknown field", `{"kind":"open_node","from":0,"round":1,"start":0,"end":2,"x":1}`},
		{"space", `{"kind":"open_node", "from":0,"round":1,"start":0,"end":2}`},
		{"explicit zero deadline", `{"kind":"node","from":0,"round":1,"start":0,"end":2,"deadline":0,"left":"` + h + `","right":"` + h + `"}`},
		{"bad party", `{"kind":"node","from":2,"round":1,"start":0,"end":2,"left":"` + h + `","right":"` + h + `"}`},
		{"empty range", `{"kind":"open_node","from":0,"round":1,"start":2,"end":2}`},
		{"negative", `{"kind":"open_node","from":0,"round":-1,"start":0,"end":2}`},
		{"leaf range", `{"kind":"leaf_values","from":0,"round":1,"start":3,"end":5,"leaves":[1],"values":[""]}`},
		{"no leaves", `{"kind":"open_leaves","from":0,"round":1,"start":3,"end":4}`},
		{"leaf after disputed", `{"kind":"open_leaves","from":0,"round":1,"start":3,"end":4,"leaves":[3]}`},
		{"leaves descending", `{"kind":"open_leaves","from":0,"round":1,"start":3,"end":4,"leaves":[2,1]}`},
		{"values missing", `{"kind":"leaf_values","from":0,"round":1,"start":3,"end":4,"leaves":[2]}`},
		{"bad base64", `{"kind":"leaf_values","from":0,"round":1,"start":3,"end":4,"leaves":[2],"values":["!!"]}`},
		{"upper hex", `{"kind":"node","from":0,"round":1,"start":0,"end":2,"left":"` + strings.ToUpper(h) + `","right":"` + h + `"}`},
		{"half node", `{"kind":"node","from":0,"round":1,"start":0,"end":2,"left":"` + h + `"}`},
		{"query with answer", `{"kind":"open_node","from":0,"round":1,"start":0,"end":2,"left":"` + h + `","right":"` + h + `"}`},
	}
	for _, c := range cases {
		if _, err := ParseMessage([]byte(c.data)); err == nil {
			t.Errorf("%s: accepted", c.name)
		} else if !strings.HasPrefix(err.Error(), "dispute message: ") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %q", c.name, err)
		}
	}
}

func FuzzParseMessage(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("testdata", "transcript.jsonl")); err == nil {
		for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
			f.Add(line)
		}
	}
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMessage(data)
		if err != nil {
			return
		}
		b, err := m.Marshal()
		if err != nil || !bytes.Equal(b, data) {
			t.Fatalf("accepted non-canonical message: %v", err)
		}
	})
}

// FuzzStep feeds arbitrary messages from B into a game against an honest
// A, then lets the game run: A must never lose and nothing may panic.
func FuzzStep(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("testdata", "transcript.jsonl")); err == nil {
		f.Add(b, uint8(3))
	}
	f.Fuzz(func(t *testing.T, data []byte, d uint8) {
		honest := honestTrace(9)
		lies := liarTrace(honest, int(d)%9, "consistent", rand.New(rand.NewPCG(1, 1)))
		ta, pa := responder(A, honest)
		tb, _ := responder(B, lies)
		m, qs, err := New(Config{Cells: 9, Roots: [2]merkle.Hash{ta.Root(), tb.Root()}, Timeout: 3}, &toyReferee{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		height := uint64(0)
		lines := bytes.Split(data, []byte("\n"))
		for i := 0; i < 50 && !m.Outcome().Done; i++ {
			if len(qs) > 0 {
				if out, err := m.Step(pa(qs[0])[0]); err == nil {
					qs = out
				} else if !errors.Is(err, ErrIgnored) {
					t.Fatal(err)
				}
			}
			if i < len(lines) {
				if msg, err := ParseMessage(lines[i]); err == nil {
					msg.From = B
					if out, err := m.Step(*msg); err == nil && len(out) > 0 {
						qs = out
					}
				}
			}
			height += 2
			m.Tick(height)
		}
		if m.Outcome().Lost[A] {
			t.Fatalf("honest A lost: %s", m.Outcome().Reason[A])
		}
	})
}
