package multigw

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"unicode"

	"github.com/verdictnet/verdict/internal/gateway"
)

// Limits on what the gateway takes from a registration file.
const (
	// MaxRegistrationBytes bounds a registration file's body.
	MaxRegistrationBytes = 64 << 10
	// MaxNameLen bounds the name of an agent (bytes).
	MaxNameLen = 200
	// MaxEndpointLen bounds an endpoint URL (bytes).
	MaxEndpointLen = 2048
)

// ErrRegistration is wrapped by every refusal of a registration file.
var ErrRegistration = errors.New("registration file refused")

// Registration is what the gateway takes from a worker's registration
// file: its name and the base URL of its OpenAI-compatible API (the
// "OpenAI" service's endpoint, without a trailing slash: .../v1).
type Registration struct {
	Name     string
	Endpoint string
}

func refused(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrRegistration, fmt.Sprintf(format, a...))
}

// ParseRegistration checks the registration file b of agent agentID on the
// chain chainID: an ERC-8004 registration-v1 file of at most
// MaxRegistrationBytes, active, whose registrations name agentID in the
// chain's identity registry (gateway.AgentRegistryID), whose name has no
// markup or control characters, and whose "OpenAI" service endpoint is an
// absolute http(s) URL without credentials, query or fragment.
func ParseRegistration(b []byte, chainID string, agentID uint64) (Registration, error) {
	if len(b) > MaxRegistrationBytes {
		return Registration{}, refused("%d bytes, at most %d", len(b), MaxRegistrationBytes)
	}
	var f gateway.AgentRegistration
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&f); err != nil {
		return Registration{}, refused("not JSON: %v", err)
	}
	if f.Type != gateway.RegistrationType {
		return Registration{}, refused("type %q, want %q", trunc(f.Type, 80), gateway.RegistrationType)
	}
	if !f.Active {
		return Registration{}, refused("the agent says it is not active")
	}
	if err := plainText(f.Name, MaxNameLen); err != nil {
		return Registration{}, refused("name: %v", err)
	}
	mine := false
	for _, r := range f.Registrations {
		if r.AgentID == agentID && r.AgentRegistry == gateway.AgentRegistryID(chainID) {
			mine = true
		}
	}
	if !mine {
		return Registration{}, refused("its registrations do not name agent %d in %s", agentID, gateway.AgentRegistryID(chainID))
	}
	for _, s := range f.Services {
		if s.Name != gateway.ServiceOpenAI {
			continue
		}
		ep, err := checkURL(s.Endpoint)
		if err != nil {
			return Registration{}, refused("%s endpoint: %v", gateway.ServiceOpenAI, err)
		}
		return Registration{Name: f.Name, Endpoint: strings.TrimRight(ep, "/")}, nil
	}
	return Registration{}, refused("no %q service", gateway.ServiceOpenAI)
}

// plainText refuses markup, control characters and overlong text.
func plainText(s string, n int) error {
	if len(s) > n {
		return fmt.Errorf("%d bytes, at most %d", len(s), n)
	}
	if strings.ContainsAny(s, "<>") {
		return fmt.Errorf("%q holds markup", trunc(s, 80))
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return fmt.Errorf("%q holds control characters", trunc(s, 80))
	}
	if strings.IndexFunc(s, spoofing) >= 0 {
		return fmt.Errorf("%q holds bidirectional controls or line separators", trunc(s, 80))
	}
	return nil
}

// spoofing reports the characters that make a name display as another
// ("Trojan Source": the bidirectional embeddings, overrides, isolates and
// marks) or break the one line it is shown on (U+2028, U+2029).
func spoofing(r rune) bool {
	switch {
	case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069, r == 0x200E, r == 0x200F, r == 0x061C:
		return true
	}
	return unicode.In(r, unicode.Zl, unicode.Zp)
}

// checkURL accepts an absolute http or https URL without user
// information, query or fragment.
func checkURL(s string) (string, error) {
	if len(s) > MaxEndpointLen {
		return "", fmt.Errorf("URL of %d bytes, at most %d", len(s), MaxEndpointLen)
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%q: %v", trunc(s, 80), err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("%q is not an http(s) URL", trunc(s, 80))
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", fmt.Errorf("%q: want http(s)://host/path without credentials, query or fragment", trunc(s, 80))
	}
	return s, nil
}

// fetchRegistration reads the registration file at uri (http or https
// only) and checks it.
func fetchRegistration(ctx context.Context, hc *http.Client, uri, chainID string, agentID uint64) (Registration, error) {
	if _, err := checkURL(uri); err != nil {
		return Registration{}, refused("agentURI: %v", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return Registration{}, refused("agentURI: %v", err)
	}
	req.Header.Set("Accept", "application/json")
	res, err := hc.Do(req)
	if err != nil {
		return Registration{}, fmt.Errorf("fetching the registration file: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return Registration{}, fmt.Errorf("fetching the registration file: status %d", res.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, MaxRegistrationBytes+1))
	if err != nil {
		return Registration{}, fmt.Errorf("reading the registration file: %w", err)
	}
	return ParseRegistration(b, chainID, agentID)
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
