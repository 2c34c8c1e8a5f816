package ledger

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
)

// Address is an account: the 32-byte ed25519 public key that signs for it.
// It encodes as 64 lower-case hex digits.
type Address [32]byte

// Hash is a 32-byte digest (model id, receipt id, request hash, ...). It
// encodes as 64 lower-case hex digits.
type Hash [32]byte

// AddressOf returns the address of an ed25519 public key.
func AddressOf(pub ed25519.PublicKey) (Address, error) {
	var a Address
	if len(pub) != ed25519.PublicKeySize {
		return a, fmt.Errorf("public key has %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	copy(a[:], pub)
	return a, nil
}

// PublicKey returns the ed25519 public key of the address.
func (a Address) PublicKey() ed25519.PublicKey { return ed25519.PublicKey(a[:]) }

func (a Address) String() string { return hex.EncodeToString(a[:]) }

// IsZero reports whether a is all zero bytes.
func (a Address) IsZero() bool { return a == Address{} }

// MarshalText encodes a as hex.
func (a Address) MarshalText() ([]byte, error) { return hexText(a[:]), nil }

// UnmarshalText decodes exactly 64 lower-case hex digits.
func (a *Address) UnmarshalText(b []byte) error { return parseHex32("address", b, (*[32]byte)(a)) }

func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// IsZero reports whether h is all zero bytes.
func (h Hash) IsZero() bool { return h == Hash{} }

// MarshalText encodes h as hex.
func (h Hash) MarshalText() ([]byte, error) { return hexText(h[:]), nil }

// UnmarshalText decodes exactly 64 lower-case hex digits.
func (h *Hash) UnmarshalText(b []byte) error { return parseHex32("hash", b, (*[32]byte)(h)) }

// ParseAddress parses 64 lower-case hex digits.
func ParseAddress(s string) (Address, error) {
	var a Address
	err := a.UnmarshalText([]byte(s))
	return a, err
}

// ParseHash parses 64 lower-case hex digits.
func ParseHash(s string) (Hash, error) {
	var h Hash
	err := h.UnmarshalText([]byte(s))
	return h, err
}

func hexText(b []byte) []byte {
	out := make([]byte, hex.EncodedLen(len(b)))
	hex.Encode(out, b)
	return out
}

func parseHex32(what string, b []byte, out *[32]byte) error {
	if len(b) != 64 {
		return fmt.Errorf("%s: want 64 hex digits, got %d characters", what, len(b))
	}
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("%s: invalid character %q (want lower-case hex)", what, c)
		}
	}
	_, err := hex.Decode(out[:], b)
	return err
}
