// Package keys holds the ed25519 signing keys of Verdict workers and the
// small JSON files they are stored in.
//
// A key file is one JSON object
//
//	{"type":"ed25519","private_key":"<64 hex digits>","public_key":"<64 hex digits>"}
//
// where private_key is the 32-byte RFC 8032 seed and public_key the 32-byte
// public key, both lower-case hex. Load checks that the public key is the one
// the seed derives and that the file is not readable by group or others.
// A worker's address is the lower-case hex of its public key.
package keys
