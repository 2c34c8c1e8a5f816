package deps

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/verdictnet/verdict/"

// engine is the deterministic engine and what it stands on: none of it
// may reach the ledger or the services.
var engine = []string{"detmath", "kernels", "tensor", "mmapfile", "hugepage", "gguf", "llama2c", "tokenizer", "model", "engine",
	"sampler", "generate", "merkle", "sha256x16", "receipt", "audit", "dispute", "chat", "jinja", "modelid", "keys", "synth"}

// services are built on the worker and the ledger client; nothing below
// them may reach them.
var services = []string{"worker", "gateway", "verifier", "mcpserver", "devnet", "explorer", "multigw"}

// ledgerSide is the ledger and its client side.
var ledgerSide = []string{"ledger", "ledger/client", "ledger/node", "ledger/abciapp", "ledger/proofhooks", "ledger/disputegame", "ledger/disputeplay"}

// rules: each internal package (relative to internal/) and the internal
// packages it must not depend on, directly or through others.
func rules() map[string][]string {
	r := map[string][]string{}
	for _, p := range engine {
		r[p] = slices.Concat(ledgerSide, []string{"inference"}, services)
	}
	// inference is the types the services share: the ledger's types
	// (hashes) but none of its machinery, and no service.
	r["inference"] = slices.Concat(ledgerSide[1:], services)
	r["ledger"] = slices.Concat([]string{"ledger/client", "ledger/node", "ledger/abciapp", "ledger/proofhooks", "ledger/disputeplay", "inference"}, services)
	r["ledger/client"] = slices.Concat([]string{"ledger/node", "ledger/abciapp", "ledger/proofhooks", "ledger/disputeplay", "inference"}, services)
	r["ledger/disputegame"] = slices.Concat([]string{"ledger/client", "ledger/node", "ledger/abciapp", "ledger/proofhooks", "ledger/disputeplay", "inference"}, services)
	// The dispute player is the client side of the validators' game: it
	// replays transcripts with disputegame and sends with the client, and
	// reaches neither the validator side nor a service.
	r["ledger/disputeplay"] = slices.Concat([]string{"ledger/node", "ledger/abciapp", "ledger/proofhooks", "inference"}, services)
	r["ledger/proofhooks"] = slices.Concat([]string{"ledger/client", "ledger/node", "ledger/disputeplay"}, services)
	// The outbox is a pure state machine: no I/O, so no ledger client.
	r["outbox"] = slices.Concat([]string{"ledger/client", "ledger/node", "ledger/abciapp", "ledger/proofhooks", "ledger/disputeplay"}, services)
	// The slot scheduler is a leaf: it knows deadlines, not what work
	// waits on them.
	r["slots"] = slices.Concat(engine, ledgerSide, []string{"inference", "outbox"}, services)
	// The bounded map is a leaf too.
	r["fifomap"] = slices.Concat(engine, ledgerSide, []string{"inference", "outbox", "slots"}, services)
	r["worker"] = []string{"ledger/proofhooks", "ledger/abciapp", "ledger/node", "gateway", "verifier", "mcpserver", "devnet", "explorer", "multigw"}
	// The services above the worker reach it only through inference's
	// types and interfaces: the devnet and the CLI wire them together.
	r["gateway"] = []string{"worker", "verifier", "mcpserver", "devnet", "ledger/node", "ledger/abciapp", "ledger/proofhooks", "explorer", "multigw"}
	r["verifier"] = []string{"worker", "gateway", "mcpserver", "devnet", "ledger/node", "ledger/abciapp", "ledger/proofhooks", "explorer", "multigw"}
	r["mcpserver"] = []string{"worker", "gateway", "verifier", "devnet", "ledger/client", "ledger/node", "ledger/abciapp", "ledger/proofhooks", "explorer", "multigw"}
	// The explorer reads the ledger only through its client, and the
	// gateway mounts it as a plain http.Handler.
	r["explorer"] = []string{"worker", "gateway", "verifier", "mcpserver", "devnet", "ledger/node", "ledger/abciapp", "ledger/proofhooks", "ledger/disputeplay", "multigw"}
	// The gateway in front of many workers talks to them over HTTP and to
	// the ledger through its client; it takes the pool's scores and the
	// x402 types from the gateway, serves MCP through mcpserver's Forwarder
	// (mcpserver stays the one MCP implementation and does not know
	// multigw) and mounts the explorer as a handler.
	r["multigw"] = []string{"worker", "verifier", "devnet", "ledger/node", "ledger/abciapp", "ledger/proofhooks", "ledger/disputeplay", "explorer"}
	return r
}

// imports reads the internal imports of every package under internal/
// (test files left out), by path relative to internal/.
func imports(t *testing.T) map[string][]string {
	root := filepath.Join("..")
	out := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		pkg := filepath.ToSlash(rel)
		if _, ok := out[pkg]; !ok {
			out[pkg] = nil
		}
		for _, im := range f.Imports {
			p, _ := strconv.Unquote(im.Path.Value)
			if dep, ok := strings.CutPrefix(p, module+"internal/"); ok && !slices.Contains(out[pkg], dep) {
				out[pkg] = append(out[pkg], dep)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDeps checks every rule against the transitive internal imports.
func TestDeps(t *testing.T) {
	direct := imports(t)
	for pkg, banned := range rules() {
		if _, ok := direct[pkg]; !ok {
			t.Errorf("rule for %s: no such package under internal/", pkg)
			continue
		}
		// Walk the dependencies, remembering how each was reached.
		via := map[string]string{pkg: ""}
		queue := []string{pkg}
		for len(queue) > 0 {
			p := queue[0]
			queue = queue[1:]
			for _, d := range direct[p] {
				if _, seen := via[d]; !seen {
					via[d] = p
					queue = append(queue, d)
				}
			}
		}
		for _, b := range banned {
			if _, ok := via[b]; !ok {
				continue
			}
			chain := []string{b}
			for p := via[b]; p != ""; p = via[p] {
				chain = append(chain, p)
			}
			slices.Reverse(chain)
			t.Errorf("internal/%s must not depend on internal/%s: %s", pkg, b, strings.Join(chain, " -> "))
		}
	}
}

// TestDepsSeesImports: the scan finds imports that are known to exist, so
// that TestDeps cannot pass by reading nothing.
func TestDepsSeesImports(t *testing.T) {
	direct := imports(t)
	for _, known := range [][2]string{{"devnet", "worker"}, {"worker", "ledger/client"}, {"gateway", "inference"}, {"verifier", "ledger/disputeplay"}} {
		if !slices.Contains(direct[known[0]], known[1]) {
			t.Errorf("import scan misses internal/%s -> internal/%s: it found %v", known[0], known[1], direct[known[0]])
		}
	}
}
