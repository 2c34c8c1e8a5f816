package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/verdictnet/verdict/internal/inference"
)

// stubBackend serves no model; enough for endpoints that run no generation.
type stubBackend struct{}

func (stubBackend) Models() []inference.ModelInfo { return nil }
func (stubBackend) Generate(context.Context, inference.Request, func(inference.Delta) error) (*inference.Result, error) {
	return nil, errors.New("stub backend: no generation")
}
func (stubBackend) Receipt(context.Context, string) ([]byte, error) {
	return nil, inference.ErrNotFound
}

type oneKey string

func (k oneKey) Authenticate(r *http.Request) (string, error) {
	if r.Header.Get("Authorization") != "Bearer "+string(k) {
		return "", errors.New("bad API key")
	}
	return "acct", nil
}

// TestRegistrationFile serves a worker's registration file and parses it
// against ERC-8004's field list: every field present with its JSON type,
// nothing else, and the endpoints it names reachable on the server.
func TestRegistrationFile(t *testing.T) {
	var h atomic.Pointer[Server]
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.Load().ServeHTTP(w, r) }))
	base := "http://" + ts.Listener.Addr().String()
	reg, err := WorkerRegistration{Name: "worker <1>", Description: "stories260K", Image: "https://example.org/w.png",
		Base: base + "/", ChainID: "verdict-dev", AgentID: 7}.Build()
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Backend: stubBackend{}, Auth: oneKey("k"), Registration: reg}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	h.Store(s)
	ts.Start()
	defer ts.Close()

	if got := RegistrationURI(ts.URL + "/"); got != ts.URL+RegistrationPath {
		t.Fatalf("RegistrationURI = %q", got)
	}
	res, err := http.Get(RegistrationURI(ts.URL)) // no API key: public
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("status %d %q: %s", res.StatusCode, res.Header.Get("Content-Type"), body)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{ // ERC-8004 registration-v1 fields and their JSON kinds
		"type": "string", "name": "string", "description": "string", "image": "string", "services": "array",
		"x402Support": "bool", "active": "bool", "registrations": "array", "supportedTrust": "array",
	}
	for k := range doc {
		if _, ok := fields[k]; !ok {
			t.Errorf("unexpected field %q", k)
		}
	}
	for k, kind := range fields {
		raw, ok := doc[k]
		if !ok {
			t.Errorf("missing field %q", k)
			continue
		}
		if got := jsonKind(raw); got != kind {
			t.Errorf("field %q is a %s, want %s", k, got, kind)
		}
	}
	var f struct {
		Type, Name, Image string
		X402Support       bool
		Services          []map[string]string
		Registrations     []map[string]json.RawMessage
		SupportedTrust    []string
	}
	if err := json.Unmarshal(body, &f); err != nil {
		t.Fatal(err)
	}
	if f.Type != RegistrationType || f.Name != "worker <1>" || f.Image != "https://example.org/w.png" || f.X402Support {
		t.Errorf("type %q name %q image %q x402 %v", f.Type, f.Name, f.Image, f.X402Support)
	}
	if !slices.Equal(f.SupportedTrust, []string{"reputation", "crypto-economic"}) {
		t.Errorf("supportedTrust %q", f.SupportedTrust)
	}
	if len(f.Registrations) != 1 || string(f.Registrations[0]["agentId"]) != "7" ||
		string(f.Registrations[0]["agentRegistry"]) != `"cosmos:verdict-dev:identity"` || len(f.Registrations[0]) != 2 {
		t.Errorf("registrations %s", doc["registrations"])
	}
	ends := map[string]string{}
	for _, sv := range f.Services {
		if sv["name"] == "" || sv["endpoint"] == "" {
			t.Errorf("service without name or endpoint: %v", sv)
		}
		ends[sv["name"]] = sv["endpoint"]
	}
	if ends["OpenAI"] != ts.URL+"/v1" || ends["MCP"] != ts.URL+"/mcp" {
		t.Fatalf("services %v", f.Services)
	}
	// The OpenAI endpoint is this API: GET {endpoint}/models with the key.
	req, _ := http.NewRequest("GET", ends["OpenAI"]+"/models", nil)
	req.Header.Set("Authorization", "Bearer k")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("GET %s/models: %d", ends["OpenAI"], res.StatusCode)
	}
	// Without Registration nothing is served there.
	o.Registration = nil
	if s, err = New(o); err != nil {
		t.Fatal(err)
	}
	h.Store(s)
	if res, err = http.Get(ts.URL + RegistrationPath); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode == 200 {
		t.Error("registration file served without Options.Registration")
	}
}

func jsonKind(raw json.RawMessage) string {
	switch raw[0] {
	case '"':
		return "string"
	case '[':
		return "array"
	case '{':
		return "object"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	}
	return "number"
}

func TestRegistrationBuildErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		w    WorkerRegistration
	}{
		{"relative", WorkerRegistration{Base: "/v1", ChainID: "c", AgentID: 1}},
		{"scheme", WorkerRegistration{Base: "ftp://h", ChainID: "c", AgentID: 1}},
		{"no host", WorkerRegistration{Base: "http://", ChainID: "c", AgentID: 1}},
		{"query", WorkerRegistration{Base: "http://h/?a=1", ChainID: "c", AgentID: 1}},
		{"bad", WorkerRegistration{Base: "http://h\x7f", ChainID: "c", AgentID: 1}},
		{"no agent", WorkerRegistration{Base: "http://h", ChainID: "c"}},
		{"no chain", WorkerRegistration{Base: "http://h", AgentID: 1}},
	} {
		if _, err := tc.w.Build(); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	r, err := WorkerRegistration{Base: "https://w.example:8443/api", ChainID: "c", AgentID: 1, X402: true}.Build()
	if err != nil {
		t.Fatal(err)
	}
	if u, _ := url.Parse(r.Services[1].Endpoint); u.Path != "/api/mcp" || !r.X402Support {
		t.Errorf("%+v", r)
	}
}
