package detcheck

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/testutil"
)

// enginePackages are the packages whose floating-point results are part of
// the contract: everything from model bytes to logits and sampled tokens.
var enginePackages = []string{
	"detmath", "kernels", "engine", "sampler", "generate", "tensor", "model",
	"tokenizer", "gguf", "llama2c", "synth",
}

// forbidden lists the math functions whose results differ between
// platforms (assembly implementations) or that the contract replaces.
var forbidden = map[string]bool{}

func init() {
	for _, f := range strings.Fields(`Exp Exp2 Expm1 Log Log10 Log1p Log2 Logb Ilogb Pow Pow10 Sin Cos Tan Sincos
		Asin Acos Atan Atan2 Sinh Cosh Tanh Asinh Acosh Atanh Cbrt Erf Erfc Erfinv Erfcinv Gamma Lgamma
		J0 J1 Jn Y0 Y1 Yn Hypot FMA`) {
		forbidden[f] = true
	}
}

func TestNoForbiddenMath(t *testing.T) {
	root := testutil.RepoRoot(t)
	checked := 0
	for _, pkg := range enginePackages {
		dir := filepath.Join(root, "internal", pkg)
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			checked++
			for _, bad := range forbiddenCalls(t, f) {
				t.Errorf("%s: %s is forbidden by docs/determinism.md (use internal/detmath)", bad.pos, bad.name)
			}
		}
	}
	if checked < 10 {
		t.Fatalf("only %d files checked: package list out of date?", checked)
	}
}

type finding struct{ pos, name string }

func forbiddenCalls(t *testing.T, file string) []finding {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	mathNames := map[string]bool{}
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		if p == "math/cmplx" {
			return []finding{{fset.Position(imp.Pos()).String(), "math/cmplx"}}
		}
		if p != "math" {
			continue
		}
		name := "math"
		if imp.Name != nil {
			name = imp.Name.Name
		}
		mathNames[name] = true
	}
	var out []finding
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if id, ok := sel.X.(*ast.Ident); ok && mathNames[id.Name] && forbidden[sel.Sel.Name] {
			out = append(out, finding{fset.Position(sel.Pos()).String(), "math." + sel.Sel.Name})
		}
		return true
	})
	return out
}

func TestDetectorFindsForbiddenMath(t *testing.T) {
	dir := t.TempDir()
	src := "package p\nimport m \"math\"\nfunc F(x float64) float64 { return m.Exp(x) + m.Sqrt(x) }\n"
	f := filepath.Join(dir, "p.go")
	if err := os.WriteFile(f, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	got := forbiddenCalls(t, f)
	if len(got) != 1 || got[0].name != "math.Exp" {
		t.Fatalf("detector found %v, want exactly math.Exp", got)
	}
}

// fmaPattern matches fused multiply-add mnemonics as `go tool objdump`
// prints them: arm64 FMADDS/FMADDD/FMSUB*/FNMADD*/FNMSUB*/VFMLA/VFMLS, amd64
// VFMADD*/VFMSUB*/VFNMADD*/VFNMSUB*.
var fmaPattern = regexp.MustCompile(`\b(FN?M(ADD|SUB)[SD]|VFML[AS]|VFN?M(ADD|SUB)[0-9A-Z]*)\b`)

// fusedInstructions compiles the packages matching gcPattern (and what pkg
// needs) for the given environment with -gcflags=-S and returns the fused
// multiply-add instructions in the listing. The go command replays cached
// compiler output, so this works on a warm build cache too.
func fusedInstructions(t *testing.T, env []string, dir, pkg, gcPattern string) []string {
	t.Helper()
	build := exec.Command("go", "build", "-gcflags="+gcPattern+"=-S", "-o", os.DevNull, pkg)
	build.Dir = dir
	build.Env = append(os.Environ(), env...)
	out, err := build.CombinedOutput()
	if err != nil {
		t.Fatalf("building %s with %v: %v\n%s", pkg, env, err, out)
	}
	var found []string
	for _, line := range strings.Split(string(out), "\n") {
		if fmaPattern.MatchString(line) {
			found = append(found, strings.TrimSpace(line))
		}
	}
	return found
}

var fmaTargets = []struct {
	name string
	env  []string
}{
	{"arm64", []string{"GOARCH=arm64", "CGO_ENABLED=0"}},
	{"amd64-v3", []string{"GOARCH=amd64", "GOAMD64=v3", "CGO_ENABLED=0"}},
}

// TestNoFusedMultiplyAdd disassembles the engine packages, built for arm64
// and for amd64 v3, and fails on any fused multiply-add: the contract rounds
// every product before it is added.
func TestNoFusedMultiplyAdd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and disassembles for two targets")
	}
	root := testutil.RepoRoot(t)
	for _, tg := range fmaTargets {
		// cmd/verdict links every engine package.
		if found := fusedInstructions(t, tg.env, root, "./cmd/verdict", "github.com/verdictnet/verdict/internal/..."); len(found) > 0 {
			t.Errorf("%s: %d fused multiply-add instructions in the project's packages, first: %s", tg.name, len(found), found[0])
		}
	}
	// Hand-written assembly is not in the compiler listing: read it.
	for _, pkg := range enginePackages {
		files, _ := filepath.Glob(filepath.Join(root, "internal", pkg, "*.s"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for i, line := range strings.Split(string(b), "\n") {
				if code, _, _ := strings.Cut(line, "//"); fmaPattern.MatchString(strings.ToUpper(code)) {
					t.Errorf("%s:%d: fused multiply-add in assembly: %s", f, i+1, strings.TrimSpace(line))
				}
			}
		}
	}
}

// TestFusedDetectorWorks proves the detector on a function Go does fuse.
func TestFusedDetectorWorks(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and disassembles for two targets")
	}
	dir := filepath.Join(testutil.RepoRoot(t), "internal", "detcheck", "testdata", "fused")
	work := t.TempDir()
	for _, f := range []string{"fused.go"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(work, f), b, 0o644)
	}
	os.WriteFile(filepath.Join(work, "go.mod"), []byte("module fused\n\ngo 1.22\n"), 0o644)
	for _, tg := range fmaTargets {
		if found := fusedInstructions(t, tg.env, work, ".", "fused"); len(found) == 0 {
			t.Errorf("%s: detector found no fused multiply-add in x*y+z", tg.name)
		}
	}
}
