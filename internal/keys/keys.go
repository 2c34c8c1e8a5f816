package keys

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// Type is the only key type.
const Type = "ed25519"

// maxFileSize caps how much of a key file is read.
const maxFileSize = 4096

// Key is an ed25519 key pair.
type Key struct {
	Private ed25519.PrivateKey
	Public  ed25519.PublicKey
}

// Address is the worker address of the key: the hex of its public key.
func (k *Key) Address() string { return Address(k.Public) }

// Address returns the lower-case hex of a public key.
func Address(pub ed25519.PublicKey) string { return hex.EncodeToString(pub) }

// ParseAddress decodes an address (64 lower-case hex digits) into a public key.
func ParseAddress(s string) (ed25519.PublicKey, error) {
	b, err := decodeHex(s, ed25519.PublicKeySize)
	if err != nil {
		return nil, fmt.Errorf("address %.80q: %w", s, err)
	}
	return ed25519.PublicKey(b), nil
}

func decodeHex(s string, n int) ([]byte, error) {
	if len(s) != 2*n {
		return nil, fmt.Errorf("want %d hex digits, have %d", 2*n, len(s))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return nil, fmt.Errorf("byte %d is not a lower-case hex digit", i)
		}
	}
	return hex.DecodeString(s)
}

// New derives a key from a 32-byte seed.
func New(seed []byte) (*Key, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("ed25519 seed has %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	return &Key{Private: priv, Public: priv.Public().(ed25519.PublicKey)}, nil
}

// GenerateKey makes a fresh key from rnd (crypto/rand when nil).
func GenerateKey(rnd io.Reader) (*Key, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(rnd, seed); err != nil {
		return nil, fmt.Errorf("reading randomness: %w", err)
	}
	return New(seed)
}

type file struct {
	Type       string `json:"type"`
	PrivateKey string `json:"private_key"`
	PublicKey  string `json:"public_key"`
}

// Marshal returns the key file contents (one JSON line).
func (k *Key) Marshal() []byte {
	b, _ := json.Marshal(file{Type: Type, PrivateKey: hex.EncodeToString(k.Private.Seed()), PublicKey: hex.EncodeToString(k.Public)})
	return append(b, '\n')
}

// Parse decodes key file contents; name is used in errors.
func Parse(name string, data []byte) (*Key, error) {
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%s: key file is %d bytes, at most %d expected", name, len(data), maxFileSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f file
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: not a key file: %w", name, err)
	}
	// Only white space may follow (dec.More is false before a '}' or ']',
	// which a second Decode reads as a syntax error).
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%s: not a key file: data after the JSON object", name)
	}
	if f.Type != Type {
		return nil, fmt.Errorf("%s: key type %.40q, want %q", name, f.Type, Type)
	}
	seed, err := decodeHex(f.PrivateKey, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("%s: private_key: %w", name, err)
	}
	pub, err := decodeHex(f.PublicKey, ed25519.PublicKeySize)
	if err != nil {
		return nil, fmt.Errorf("%s: public_key: %w", name, err)
	}
	k, err := New(seed)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if !bytes.Equal(k.Public, pub) {
		return nil, fmt.Errorf("%s: public_key %s does not match the private key (which gives %s)", name, f.PublicKey, k.Address())
	}
	return k, nil
}

// Generate makes a fresh key and writes it to path with mode 0600. It
// refuses to overwrite an existing file.
func Generate(path string) (*Key, error) {
	k, err := GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	if err := Write(path, k); err != nil {
		return nil, err
	}
	return k, nil
}

// Write stores k at path with mode 0600; it refuses to overwrite.
func Write(path string, k *Key) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s: already exists; refusing to overwrite a key file", path)
		}
		return fmt.Errorf("creating key file: %w", err)
	}
	_, werr := f.Write(k.Marshal())
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(path)
		return fmt.Errorf("%s: writing key file: %w", path, werr)
	}
	return nil
}

// Load reads a key file. It rejects files that group or others can read.
func Load(path string) (*Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: key file has mode %#o; it must not be accessible by group or others (chmod 600)", path, st.Mode().Perm())
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return Parse(path, data)
}

// Sign signs msg.
func (k *Key) Sign(msg []byte) []byte { return ed25519.Sign(k.Private, msg) }
