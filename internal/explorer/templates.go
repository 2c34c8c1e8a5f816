package explorer

import (
	"encoding/hex"
	"fmt"
	"html/template"
	"strings"

	"github.com/verdictnet/verdict/internal/ledger"
)

// pages are the templates, each drawn inside layout.html.
var pages = []string{"overview", "models", "workers", "receipt", "account", "error"}

// statusMark is the sign beside a status's name: statuses read without
// colour.
func statusMark(s string) string {
	switch s {
	case ledger.ShownFinal, ledger.ShownAudited:
		return "✓"
	case ledger.ShownSlashed:
		return "✗"
	case ledger.ShownChallenged:
		return "!"
	}
	return "…"
}

func auditMark(s string) string {
	switch s {
	case ledger.AuditPassed:
		return "✓"
	case ledger.AuditFailed, ledger.AuditMissed:
		return "✗"
	}
	return "…"
}

var funcs = template.FuncMap{
	"short":      short,
	"statusMark": statusMark,
	"auditMark":  auditMark,
	"hex":        func(b [32]byte) string { return hex.EncodeToString(b[:]) },
	"zero":       func(b [32]byte) bool { return b == [32]byte{} },
	"sub":        func(a, b int) int { return a - b },
	"add":        func(a, b int) int { return a + b },
	"join":       strings.Join,
	// pager hands the pager template the prefix with the page's data.
	"pager": func(prefix string, page any) map[string]any { return map[string]any{"Prefix": prefix, "Page": page} },
}

func (e *Explorer) parseTemplates() error {
	e.tmpl = map[string]*template.Template{}
	for _, name := range pages {
		files := []string{"templates/layout.html", "templates/error.html"}
		if name != "error" {
			files = append(files, "templates/"+name+".html")
		}
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, files...)
		if err != nil {
			return fmt.Errorf("explorer: templates of %s: %w", name, err)
		}
		e.tmpl[name] = t
	}
	return nil
}
