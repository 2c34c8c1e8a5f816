package ledger

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The names of events and attributes, read from eventAttrs.
func eventNames() (types, keys map[string]bool) {
	types, keys = map[string]bool{}, map[string]bool{}
	for _, e := range eventAttrs {
		types[string(e.Type)] = true
		for _, k := range e.Attrs {
			keys[string(k)] = true
		}
	}
	return types, keys
}

// eventLiterals reports the places in a Go file where an event type or
// attribute key is spelled as a string: compared with a .Type or .Key,
// a case of a switch on .Type, an index of .Attrs, an argument of .Attr,
// the Type or Key of an Event or Attr literal, converted to EventType or
// AttrKey, or an event type (one spelled like no other word) declared as
// a constant or variable of another package.
func eventLiterals(fset *token.FileSet, f *ast.File) []string {
	types, keys := eventNames()
	var out []string
	flag := func(e ast.Expr, what string) {
		lit, ok := e.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return
		}
		s, err := strconv.Unquote(lit.Value)
		if err != nil || !types[s] && !keys[s] {
			return
		}
		out = append(out, fset.Position(lit.Pos()).String()+": "+what+" "+lit.Value)
	}
	sel := func(e ast.Expr, names ...string) bool {
		s, ok := e.(*ast.SelectorExpr)
		return ok && slices.Contains(names, s.Sel.Name)
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.BinaryExpr:
			if n.Op == token.EQL || n.Op == token.NEQ {
				if sel(n.X, "Type", "Key") {
					flag(n.Y, "compared with")
				}
				if sel(n.Y, "Type", "Key") {
					flag(n.X, "compared with")
				}
			}
		case *ast.SwitchStmt:
			if sel(n.Tag, "Type", "Key") {
				for _, c := range n.Body.List {
					for _, e := range c.(*ast.CaseClause).List {
						flag(e, "case")
					}
				}
			}
		case *ast.IndexExpr:
			if sel(n.X, "Attrs") {
				flag(n.Index, "index")
			}
		case *ast.CallExpr:
			if sel(n.Fun, "Attr", "EventType", "AttrKey") {
				for _, a := range n.Args {
					flag(a, "argument")
				}
			}
			if id, ok := n.Fun.(*ast.Ident); ok && (id.Name == "EventType" || id.Name == "AttrKey") {
				for _, a := range n.Args {
					flag(a, "converted")
				}
			}
		case *ast.ValueSpec:
			// A package's own copy of an event name: only the names no
			// other word is spelled like (snake_case, or the ERCs'
			// CamelCase), so that a command "tx" or "bond" is no hit.
			for _, v := range n.Values {
				if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					if s, err := strconv.Unquote(lit.Value); err == nil && types[s] && (strings.Contains(s, "_") || s != strings.ToLower(s)) {
						flag(lit, "declared")
					}
				}
			}
		case *ast.CompositeLit:
			if sel(n.Type, "Event", "Attr") {
				for _, el := range n.Elts {
					if kv, ok := el.(*ast.KeyValueExpr); ok {
						if k, ok := kv.Key.(*ast.Ident); ok && (k.Name == "Type" || k.Name == "Key") {
							flag(kv.Value, "field "+k.Name)
						}
					}
				}
			}
		}
		return true
	})
	return out
}

// TestNoEventLiterals: outside this package (its own files) no Go file of
// the module, tests included, spells an event type or attribute key as a
// string where it reads or builds an event; they use the constants and the
// decoders.
func TestNoEventLiterals(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	self, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	files := 0
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (d.Name() == "testdata" || d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || filepath.Dir(path) == self {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		files++
		for _, hit := range eventLiterals(fset, f) {
			t.Errorf("%s (use the ledger's constant)", hit)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 100 {
		t.Fatalf("scanned only %d files under %s", files, root)
	}
}

// TestEventLiteralsSeen: the scan finds each way of spelling an event
// name, and passes the constants and unrelated strings.
func TestEventLiteralsSeen(t *testing.T) {
	for _, tc := range []struct {
		src  string
		hits int
	}{
		{`if e.Type == "audit_selected" {}`, 1},
		{`if "dispute_opened" != ev.Type {}`, 1},
		{`if a.Key == "disputeId" {}`, 1},
		{`switch e.Type { case "receipt_published", "receipt_final": }`, 2},
		{`_ = e.Attrs["receiptId"]`, 1},
		{`_, _ = e.Attr("worker")`, 1},
		{`_ = ledger.Event{Type: "tx", Attrs: []ledger.Attr{{Key: "fee", Value: "1"}}}`, 1},
		{`_ = ledger.Attr{Key: "fee", Value: "1"}`, 1},
		{`_ = ledger.EventType("bond")`, 1},
		{`if e.Type == ledger.EventAuditSelected {}`, 0},
		{`_, _ = e.Attr(ledger.AttrWorker)`, 0},
		{`switch cmd { case "tx", "bond": }`, 0},
		{`if e.Type == "tensor_q8" {}`, 0},
		{"const (\n evReceiptPublished = \"receipt_published\"\n evRegistered = \"Registered\"\n)", 2},
		{`var cmd, verb = "tx", "bond"`, 0},
	} {
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, "x.go", "package x\nfunc f() {\n"+tc.src+"\n}\n", 0)
		if err != nil {
			t.Fatalf("%s: %v", tc.src, err)
		}
		if got := eventLiterals(fset, f); len(got) != tc.hits {
			t.Errorf("%s: %d hits %v, want %d", tc.src, len(got), got, tc.hits)
		}
	}
}
