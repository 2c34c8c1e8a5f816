package receipt

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/merkle"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// RFC 8032 TEST 1 seed: a fixed worker key for the test vector.
func testKey(t testing.TB) ed25519.PrivateKey {
	seed, _ := hex.DecodeString("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
	return ed25519.NewKeyFromSeed(seed)
}

func sample(t testing.TB) *Receipt {
	r := &Receipt{
		Version:    Version,
		Spec:       DefaultSpec,
		Model:      merkle.LeafHash([]byte("model")),
		Nonce:      []byte{0xde, 0xad, 0xbe, 0xef},
		Sampling:   Sampling{Temperature: 0.8, TopK: 40, TopP: 0.95, Seed: 18446744073709551615, Steps: 64, Stop: []int{1}},
		Prompt:     []int{1, 9038, 2501, 263, 931},
		Output:     []int{29892, 727, 471, 263, 2217, 0, 16777215},
		LogitsRoot: LogitsRoot([][]float32{{1, 2}, {3, 4}}),
		TraceRoot:  merkle.LeafHash([]byte("trace")),
	}
	if err := r.Sign(testKey(t)); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestGolden(t *testing.T) {
	r := sample(t)
	enc, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "receipt.json")
	if *update {
		if err := os.WriteFile(path, enc, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, golden) {
		t.Fatalf("encoding differs from %s (run with -update if the format changed on purpose)\ngot  %s\nwant %s", path, enc, golden)
	}
	// 29892 = 0x0074c4. Independent checks of the golden bytes: generic JSON decoding sees the
	// values, the id is SHA-256 of the file, and the signature verifies over
	// the domain prefix plus the file with the signature field cut out.
	var m map[string]any
	if err := json.Unmarshal(golden, &m); err != nil {
		t.Fatal(err)
	}
	if m["temperature"].(float64) != float64(float32(0.8)) && fmt.Sprint(m["temperature"]) != "0.8" {
		t.Errorf("temperature %v", m["temperature"])
	}
	if m["seed"] != "18446744073709551615" || m["spec"] != "verdict-det/2" || m["top_k"].(float64) != 40 {
		t.Errorf("fields: %v", m)
	}
	out, _ := base64.StdEncoding.DecodeString(m["output"].(string))
	if !bytes.Equal(out[:3], []byte{0xc4, 0x74, 0x00}) || !bytes.Equal(out[len(out)-3:], []byte{0xff, 0xff, 0xff}) {
		t.Errorf("output tokens packed as % x", out)
	}
	if r.ID() != sha256.Sum256(golden) {
		t.Error("ID is not SHA-256 of the encoding")
	}
	i := bytes.Index(golden, []byte(`,"signature":"`))
	unsigned := append(append([]byte{}, golden[:i]...), '}')
	sig, _ := hex.DecodeString(m["signature"].(string))
	pub, _ := hex.DecodeString(m["worker"].(string))
	if !ed25519.Verify(pub, append([]byte("verdict/receipt/v1\x00"), unsigned...), sig) {
		t.Error("golden signature does not verify independently")
	}
	p, err := Parse(golden)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(); err != nil {
		t.Fatal(err)
	}
	if p.ID() != r.ID() {
		t.Fatal("parsed receipt has another id")
	}
}

func TestTamperedFieldsFailVerify(t *testing.T) {
	mut := []struct {
		name string
		f    func(r *Receipt)
	}{
		{"model", func(r *Receipt) { r.Model[0] ^= 1 }},
		{"prompt token", func(r *Receipt) { r.Prompt[2]++ }},
		{"output token", func(r *Receipt) { r.Output[0]++ }},
		{"truncated output", func(r *Receipt) { r.Output = r.Output[:len(r.Output)-1] }},
		{"seed", func(r *Receipt) { r.Sampling.Seed-- }},
		{"temperature", func(r *Receipt) { r.Sampling.Temperature = 0.7 }},
		{"top_k", func(r *Receipt) { r.Sampling.TopK = 41 }},
		{"top_p", func(r *Receipt) { r.Sampling.TopP = 1 }},
		{"steps", func(r *Receipt) { r.Sampling.Steps = 63 }},
		{"stop", func(r *Receipt) { r.Sampling.Stop = []int{2} }},
		{"no stop", func(r *Receipt) { r.Sampling.Stop = nil }},
		{"logits root", func(r *Receipt) { r.LogitsRoot[31] ^= 0x80 }},
		{"trace root", func(r *Receipt) { r.TraceRoot[5] ^= 1 }},
		{"nonce", func(r *Receipt) { r.Nonce = nil }},
		{"spec", func(r *Receipt) { r.Spec = "verdict-det/3" }},
		{"signature", func(r *Receipt) { r.Signature[0] ^= 1 }},
		{"other worker", func(r *Receipt) {
			r.Worker = ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey)
		}},
	}
	for _, m := range mut {
		t.Run(m.name, func(t *testing.T) {
			r := sample(t)
			m.f(r)
			if err := r.Verify(); !errors.Is(err, ErrSignature) {
				t.Fatalf("Verify = %v, want ErrSignature", err)
			}
			enc, err := r.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			p, err := Parse(enc)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Verify(); !errors.Is(err, ErrSignature) {
				t.Fatalf("Verify after parse = %v, want ErrSignature", err)
			}
		})
	}
	r := sample(t)
	r.Signature = nil
	if err := r.Verify(); !errors.Is(err, ErrSignature) {
		t.Fatalf("unsigned: %v", err)
	}
	if _, err := r.Marshal(); err == nil {
		t.Fatal("Marshal of an unsigned receipt succeeded")
	}
}

func TestParseRejectsNonCanonical(t *testing.T) {
	enc, _ := sample(t).Marshal()
	s := string(enc)
	repl := func(old, new string) string {
		if !strings.Contains(s, old) {
			t.Fatalf("test bug: %q not in %s", old, s)
		}
		return strings.Replace(s, old, new, 1)
	}
	cases := []struct{ name, data, want string }{
		{"space", repl(`,"spec"`, `, "spec"`), "canonical"},
		{"trailing newline", s + "\n", "canonical"},
		{"upper hex", repl(`"nonce":"deadbeef"`, `"nonce":"DEADBEEF"`), "canonical"},
		{"escaped char", repl(`"spec":"verdict`, `"spec":"\u0076erdict`), "canonical"},
		{"float spelling", repl(`"top_p":0.95`, `"top_p":0.950`), "canonical"},
		{"float exponent", repl(`"temperature":0.8`, `"temperature":8e-1`), "canonical"},
		{"seed leading zero", repl(`"seed":"1`, `"seed":"01`), "canonical"},
		{"field order", repl(`"version":1,"spec":"verdict-det/2"`, `"spec":"verdict-det/2","version":1`), "canonical"},
		{"duplicate field", repl(`"version":1,`, `"version":1,"version":1,`), "canonical"},
		{"key case", repl(`"version"`, `"Version"`), "canonical"},
		{"unknown field", repl(`"version":1,`, `"version":1,"x":1,`), "unknown field"},
		{"missing signature", repl(`,"signature":"`+hex.EncodeToString(sample(t).Signature)+`"`, ``), "missing signature"},
		{"short model", repl(`"model":"`, `"model":"0`), "model"},
		{"bad base64", repl(`"prompt":"`, `"prompt":"!!!!`), "prompt"},
		{"partial token", repl(`"prompt":"`, `"prompt":"AA==`), "prompt"},
		{"empty prompt", strings.Replace(s, `"prompt":"`+packTokens(sample(t).Prompt)+`"`, `"prompt":""`, 1), "empty prompt"},
		{"version 2", repl(`"version":1`, `"version":2`), "version"},
		{"negative top_k", repl(`"top_k":40`, `"top_k":-1`), "top_k"},
		{"top_p above one", repl(`"top_p":0.95`, `"top_p":1.5`), "top_p"},
		{"steps below prompt", repl(`"steps":64`, `"steps":4`), "steps"},
		{"negative temperature", repl(`"temperature":0.8`, `"temperature":-0.8`), "temperature"},
		{"negative zero", repl(`"temperature":0.8`, `"temperature":-0`), "temperature"},
		{"huge number", repl(`"temperature":0.8`, `"temperature":1e99`), "temperature"},
		{"seed overflow", repl(`"seed":"18446744073709551615"`, `"seed":"18446744073709551616"`), "seed"},
		{"not json", "hello", "not a receipt"},
		{"empty", "", "not a receipt"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.data))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Parse = %v, want error mentioning %q", err, c.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
}

func TestSize(t *testing.T) {
	// A long generation with a 32000-token vocabulary and full-size fields.
	for _, n := range []int{1, 256, 4096} {
		r := sample(t)
		r.Prompt = make([]int, n)
		r.Output = make([]int, n)
		for i := range r.Prompt {
			r.Prompt[i] = 31999 - i%7
			r.Output[i] = 29999 + i%3
		}
		r.Nonce = bytes.Repeat([]byte{0xff}, MaxNonceLen)
		r.Sampling = Sampling{Temperature: 1.0000001, TopK: 16777216, TopP: 0.99999994, Seed: 1<<64 - 1, Steps: 2 * n, Stop: []int{1, 2}}
		if err := r.Sign(testKey(t)); err != nil {
			t.Fatal(err)
		}
		enc, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		tokens := 2 * n
		if limit := 1024 + 4*tokens; len(enc) > limit {
			t.Errorf("%d tokens: receipt is %d bytes, limit %d", tokens, len(enc), limit)
		}
		t.Logf("%d tokens: %d bytes (%d fixed)", tokens, len(enc), len(enc)-4*tokens)
	}
}

func TestFloatsRoundTrip(t *testing.T) {
	for _, f := range []float32{0, 1, 0.1, 0.7, 1e-8, 3.4028235e38, 1.0000001, 1.4e-45} {
		r := sample(t)
		r.Sampling.Temperature = f
		if err := r.Sign(testKey(t)); err != nil {
			t.Fatal(err)
		}
		enc, _ := r.Marshal()
		p, err := Parse(enc)
		if err != nil {
			t.Fatalf("%v: %v", f, err)
		}
		if p.Sampling.Temperature != f {
			t.Fatalf("%v came back as %v", f, p.Sampling.Temperature)
		}
	}
}

func TestLogitsRoot(t *testing.T) {
	rows := [][]float32{{1, -2.5}, {0}}
	// Leaf bytes written out by hand: 1.0 = 0x3f800000, -2.5 = 0xc0200000.
	l0 := []byte{0, 0, 0x80, 0x3f, 0, 0, 0x20, 0xc0}
	l1 := []byte{0, 0, 0, 0}
	want := merkle.NodeHash(merkle.LeafHash(l0), merkle.LeafHash(l1))
	if got := LogitsRoot(rows); got != want {
		t.Fatalf("LogitsRoot = %s, want %s", got, want)
	}
}

func FuzzParse(f *testing.F) {
	enc, _ := sample(f).Marshal()
	f.Add(enc)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(data)
		if err != nil {
			return
		}
		again, err := r.Marshal()
		if err != nil {
			t.Fatalf("parsed receipt does not marshal: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("Parse accepted a non-canonical encoding")
		}
		_ = r.Verify()
	})
}

func ExampleParse() {
	seed := make([]byte, 32)
	r := &Receipt{Version: Version, Spec: DefaultSpec, Prompt: []int{1, 2}, Output: []int{3},
		Sampling: Sampling{Steps: 2}}
	_ = r.Sign(ed25519.NewKeyFromSeed(seed))
	enc, _ := r.Marshal()
	p, err := Parse(enc)
	fmt.Println(err, p.Verify(), p.Output)
	// Output: <nil> <nil> [3]
}

// TestParseAnySpelling: pretty-printed, re-ordered and newline-terminated
// spellings of a receipt give the receipt itself (same id, signature still
// valid); changed values still fail Verify; other damage (trailing data,
// unknown fields, upper-case hashes) is refused.
func TestParseAnySpelling(t *testing.T) {
	enc, err := sample(t).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(enc, &fields); err != nil {
		t.Fatal(err)
	}
	pretty, _ := json.MarshalIndent(fields, "", "  ") // keys sorted: another order
	want, _ := Parse(enc)
	for name, data := range map[string][]byte{
		"canonical":        enc,
		"pretty, sorted":   pretty,
		"trailing newline": append(append([]byte(nil), enc...), '\n'),
	} {
		r, err := ParseAnySpelling(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if r.ID() != want.ID() {
			t.Fatalf("%s: id %x, want %x", name, r.ID(), want.ID())
		}
		if err := r.Verify(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := Parse(data); (err == nil) != (name == "canonical") {
			t.Fatalf("%s: strict Parse gave %v", name, err)
		}
	}
	changed := strings.Replace(string(pretty), `"steps": `+strconv.Itoa(want.Sampling.Steps), `"steps": `+strconv.Itoa(want.Sampling.Steps+1), 1)
	if changed == string(pretty) {
		t.Fatal("test did not change the steps")
	}
	r, err := ParseAnySpelling([]byte(changed))
	if err != nil {
		t.Fatal(err)
	}
	if r.Verify() == nil {
		t.Fatal("a receipt with changed steps verifies")
	}
	upper := strings.Replace(string(enc), want.LogitsRoot.String(), strings.ToUpper(want.LogitsRoot.String()), 1)
	for _, bad := range []string{string(enc) + "{}", string(enc) + " x", `{"version":1,"x":2}`, "", upper} {
		if _, err := ParseAnySpelling([]byte(bad)); err == nil {
			t.Fatalf("accepted %.40q", bad)
		}
	}
}

// FuzzParseAnySpelling: whatever it accepts re-encodes to a canonical
// receipt that Parse accepts with the same id.
func FuzzParseAnySpelling(f *testing.F) {
	enc, _ := sample(f).Marshal()
	f.Add(enc)
	f.Add(append(append([]byte(nil), enc...), '\n'))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseAnySpelling(data)
		if err != nil {
			return
		}
		c, err := r.Marshal()
		if err != nil {
			t.Fatalf("accepted receipt does not marshal: %v", err)
		}
		r2, err := Parse(c)
		if err != nil || r2.ID() != r.ID() {
			t.Fatalf("canonical form does not parse back: %v", err)
		}
	})
}

// A receipt whose prompt came from a chat template carries chat_template
// after prompt; the field is absent otherwise, so receipts without it keep
// their encoding (testdata/receipt.json).
func TestGoldenChatTemplate(t *testing.T) {
	r := sample(t)
	r.ChatTemplate = merkle.Hash(sha256.Sum256([]byte("chat")))
	if err := r.Sign(testKey(t)); err != nil {
		t.Fatal(err)
	}
	enc, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "receipt-chat.json")
	if *update {
		if err := os.WriteFile(path, enc, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, golden) {
		t.Fatalf("encoding differs from %s (run with -update if the format changed on purpose)\ngot  %s\nwant %s", path, enc, golden)
	}
	want := `","prompt":"` + packTokens(r.Prompt) + `","chat_template":"` + r.ChatTemplate.String() + `","output":"`
	if !bytes.Contains(golden, []byte(want)) {
		t.Errorf("chat_template is not right after prompt: %s", golden)
	}
	back, err := Parse(golden)
	if err != nil {
		t.Fatal(err)
	}
	if back.ChatTemplate != r.ChatTemplate || back.Verify() != nil || back.ID() != r.ID() {
		t.Errorf("round trip: %+v", back)
	}
	// The signature covers the field: another digest does not verify.
	bad := bytes.Replace(golden, []byte(r.ChatTemplate.String()), []byte(merkle.LeafHash([]byte("x")).String()), 1)
	if br, err := Parse(bad); err != nil || br.Verify() == nil {
		t.Errorf("changed chat_template: parse %v, verify passed", err)
	}
	// Without a chat template the field is absent; spelling it out (zero
	// or empty) is not canonical.
	plain, err := os.ReadFile(filepath.Join("testdata", "receipt.json"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(plain, []byte("chat_template")) {
		t.Errorf("receipt without a chat template mentions it: %s", plain)
	}
	for _, v := range []string{"", strings.Repeat("0", 64)} {
		spelled := bytes.Replace(plain, []byte(`","output":"`), []byte(`","chat_template":"`+v+`","output":"`), 1)
		if _, err := Parse(spelled); err == nil {
			t.Errorf("chat_template %q accepted", v)
		}
	}
}
