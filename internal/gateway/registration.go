package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// RegistrationType is the "type" of an ERC-8004 agent registration file.
const RegistrationType = "https://eips.ethereum.org/EIPS/eip-8004#registration-v1"

// RegistrationPath is where a server serves its agent's registration file
// (ERC-8004's well-known location); a worker registers the URI of this
// path on the ledger as its agentURI.
const RegistrationPath = "/.well-known/agent-registration.json"

// Service names in a registration file (ERC-8004 names MCP as "MCP"; the
// OpenAI-compatible API has no name in the ERC and is called "OpenAI").
const (
	ServiceOpenAI = "OpenAI"
	ServiceMCP    = "MCP"
)

// Trust models a Verdict worker supports: ERC-8004 reputation (feedback
// given when its receipts become final) and crypto-economic (its bonded
// stake is slashed for a failed audit or a lost dispute).
const (
	TrustReputation     = "reputation"
	TrustCryptoEconomic = "crypto-economic"
)

// AgentRegistration is an ERC-8004 agent registration file (the document an
// agent's agentURI points at).
type AgentRegistration struct {
	Type           string               `json:"type"`
	Name           string               `json:"name"`
	Description    string               `json:"description"`
	Image          string               `json:"image"`
	Services       []AgentService       `json:"services"`
	X402Support    bool                 `json:"x402Support"`
	Active         bool                 `json:"active"`
	Registrations  []AgentRegistryEntry `json:"registrations"`
	SupportedTrust []string             `json:"supportedTrust"`
}

// AgentService is one endpoint of a registration file.
type AgentService struct {
	Name     string `json:"name"`
	Endpoint string `json:"endpoint"`
	Version  string `json:"version,omitempty"`
}

// AgentRegistryEntry names the identity registry and the agentId under
// which the agent is registered.
type AgentRegistryEntry struct {
	AgentID       uint64 `json:"agentId"`
	AgentRegistry string `json:"agentRegistry"`
}

// AgentRegistryID is the agentRegistry of Verdict's identity registry on
// the chain chainID: "cosmos:CHAIN:identity", ERC-8004's
// {namespace}:{chainId}:{identityRegistry} with the CAIP-2 cosmos namespace
// (the chain is a CometBFT chain named by its chain id) and, in place of a
// contract address, the name of the ledger's registry.
func AgentRegistryID(chainID string) string { return CAIP2Network(chainID) + ":identity" }

// CAIP2Network is the CAIP-2 id of the Verdict chain chainID: "cosmos:" and
// the chain id (CAIP-2 allows 1 to 32 characters of [-a-zA-Z0-9] there;
// `verdict node init` chain ids should keep to that).
func CAIP2Network(chainID string) string { return "cosmos:" + chainID }

// WorkerRegistration builds the registration file of a worker whose API is
// served at base (an absolute http or https URL without a trailing slash),
// registered as agentID on the chain chainID.
type WorkerRegistration struct {
	Name, Description, Image string
	Base                     string
	ChainID                  string
	AgentID                  uint64
	// X402 says whether the server takes x402 payments.
	X402 bool
}

// Build returns the registration file, or an error for a base URL that is
// not absolute http(s).
func (w WorkerRegistration) Build() (*AgentRegistration, error) {
	u, err := url.Parse(w.Base)
	if err != nil {
		return nil, fmt.Errorf("registration: base URL %q: %w", w.Base, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("registration: base URL %q is not an absolute http(s) URL", w.Base)
	}
	if w.ChainID == "" || w.AgentID == 0 {
		return nil, errors.New("registration: no chain id or agent id")
	}
	base := strings.TrimRight(w.Base, "/")
	return &AgentRegistration{
		Type:        RegistrationType,
		Name:        w.Name,
		Description: w.Description,
		Image:       w.Image,
		Services: []AgentService{
			{Name: ServiceOpenAI, Endpoint: base + "/v1", Version: "v1"},
			{Name: ServiceMCP, Endpoint: base + "/mcp", Version: MCPProtocolVersion},
		},
		X402Support:    w.X402,
		Active:         true,
		Registrations:  []AgentRegistryEntry{{AgentID: w.AgentID, AgentRegistry: AgentRegistryID(w.ChainID)}},
		SupportedTrust: []string{TrustReputation, TrustCryptoEconomic},
	}, nil
}

// MCPProtocolVersion is the MCP protocol version a registration file
// advertises (the go-sdk negotiates older ones too).
const MCPProtocolVersion = "2025-11-25"

// RegistrationURI is the agentURI a worker served at base registers.
func RegistrationURI(base string) string { return strings.TrimRight(base, "/") + RegistrationPath }

// registration serves the registration file, without authentication: it
// is public by design (ERC-8004 clients read it to find the endpoints).
func (s *Server) registration(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "max-age=60")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	writeJSON(w, http.StatusOK, s.o.Registration)
}
