package keys

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// RFC 8032 section 7.1, TEST 1.
const (
	rfcSeed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
	rfcPub  = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
)

func TestRFC8032Vector(t *testing.T) {
	seed, _ := hex.DecodeString(rfcSeed)
	k, err := New(seed)
	if err != nil {
		t.Fatal(err)
	}
	if k.Address() != rfcPub {
		t.Fatalf("public key %s, RFC 8032 says %s", k.Address(), rfcPub)
	}
	data := fmt.Sprintf(`{"type":"ed25519","private_key":%q,"public_key":%q}`, rfcSeed, rfcPub)
	k2, err := Parse("k.json", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k2.Private, k.Private) {
		t.Fatal("parsed key differs")
	}
}

func TestGenerateLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "worker.key")
	k, err := Generate(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %#o, want 0600", st.Mode().Perm())
	}
	k2, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if k2.Address() != k.Address() || !bytes.Equal(k2.Private, k.Private) {
		t.Fatal("loaded key differs from generated key")
	}
	msg := []byte("hello")
	if !ed25519.Verify(k2.Public, msg, k.Sign(msg)) {
		t.Fatal("signature does not verify")
	}
	before, _ := os.ReadFile(path)
	if _, err := Generate(path); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("second Generate: %v, want a refusal", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("existing key file was modified")
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("Load of a world-readable key: %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("Load of a missing file succeeded")
	}
}

func TestParseRejects(t *testing.T) {
	otherPub := strings.Repeat("ab", 32)
	cases := []struct{ name, data, want string }{
		{"empty", ``, "not a key file"},
		{"not json", `hello`, "not a key file"},
		{"wrong type", fmt.Sprintf(`{"type":"rsa","private_key":%q,"public_key":%q}`, rfcSeed, rfcPub), "key type"},
		{"short seed", fmt.Sprintf(`{"type":"ed25519","private_key":%q,"public_key":%q}`, rfcSeed[:62], rfcPub), "private_key"},
		{"upper hex", fmt.Sprintf(`{"type":"ed25519","private_key":%q,"public_key":%q}`, strings.ToUpper(rfcSeed), rfcPub), "private_key"},
		{"bad pub", fmt.Sprintf(`{"type":"ed25519","private_key":%q,"public_key":"xyz"}`, rfcSeed), "public_key"},
		{"mismatch", fmt.Sprintf(`{"type":"ed25519","private_key":%q,"public_key":%q}`, rfcSeed, otherPub), "does not match"},
		{"unknown field", fmt.Sprintf(`{"type":"ed25519","private_key":%q,"public_key":%q,"x":1}`, rfcSeed, rfcPub), "unknown field"},
		{"trailing", fmt.Sprintf(`{"type":"ed25519","private_key":%q,"public_key":%q}{}`, rfcSeed, rfcPub), "after the JSON"},
		{"trailing brace", fmt.Sprintf(`{"type":"ed25519","private_key":%q,"public_key":%q}}`, rfcSeed, rfcPub), "after the JSON"},
		{"trailing bracket", fmt.Sprintf(`{"type":"ed25519","private_key":%q,"public_key":%q} ]`, rfcSeed, rfcPub), "after the JSON"},
		{"huge", strings.Repeat(" ", 5000), "at most"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("k.json", []byte(c.data))
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "k.json: ") {
				t.Fatalf("Parse = %v, want an error naming k.json and mentioning %q", err, c.want)
			}
		})
	}
}

func TestParseAddress(t *testing.T) {
	pub, err := ParseAddress(rfcPub)
	if err != nil || Address(pub) != rfcPub {
		t.Fatalf("ParseAddress: %v", err)
	}
	for _, bad := range []string{"", rfcPub[:10], strings.ToUpper(rfcPub), rfcPub + "00"} {
		if _, err := ParseAddress(bad); err == nil {
			t.Errorf("ParseAddress(%q) succeeded", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(fmt.Sprintf(`{"type":"ed25519","private_key":%q,"public_key":%q}`, rfcSeed, rfcPub)))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"type":"ed25519"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := Parse("fuzz", data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		k2, err := Parse("again", k.Marshal())
		if err != nil || !bytes.Equal(k2.Private, k.Private) {
			t.Fatalf("re-parse of a marshalled key: %v", err)
		}
	})
}

func ExampleNew() {
	seed, _ := hex.DecodeString("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
	k, _ := New(seed)
	fmt.Println(k.Address())
	// Output: d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a
}
