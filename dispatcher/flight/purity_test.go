package flight

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// forbidden lists what a pure core may not use, by import path: whole
// packages, or the named functions of one.
var forbidden = map[string][]string{
	"github.com/nats-io/nats.go": nil, // all of it
	"sync":                       nil,
	"sync/atomic":                nil,
	"net":                        nil,
	"os":                         nil,
	"time":                       {"Now", "Since", "Until", "Sleep", "After", "AfterFunc", "NewTimer", "NewTicker", "Tick"},
	"math/rand":                  {"*"}, // any function: the global source
	"math/rand/v2":               {"*"},
}

// randType are math/rand's types, which a core may take a value of.
var randType = map[string]bool{"Rand": true, "Source": true, "PCG": true, "ChaCha8": true, "Zipf": true}

// impurities returns what src, a Go file, uses that a pure core may not.
func impurities(name string, src []byte) ([]string, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, name, src, 0)
	if err != nil {
		return nil, err
	}
	var bad []string
	names := map[string]string{} // local name -> import path
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		fns, isForbidden := forbidden[path]
		if isForbidden && fns == nil {
			bad = append(bad, "imports "+path)
			continue
		}
		local := path[strings.LastIndex(path, "/")+1:]
		if path == "math/rand/v2" {
			local = "rand"
		}
		if imp.Name != nil {
			local = imp.Name.Name
		}
		names[local] = path
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.GoStmt:
			bad = append(bad, fset.Position(n.Pos()).String()+": starts a goroutine")
		case *ast.SelectorExpr:
			id, ok := n.X.(*ast.Ident)
			if !ok {
				return true
			}
			path, ok := names[id.Name]
			if !ok {
				return true
			}
			for _, fn := range forbidden[path] {
				// "*": every function of the package, which draw on its
				// global source; its types and constructors are fine.
				all := fn == "*" && !randType[n.Sel.Name] && !strings.HasPrefix(n.Sel.Name, "New")
				if all || fn == n.Sel.Name {
					bad = append(bad, fset.Position(n.Pos()).String()+": uses "+path+"."+n.Sel.Name)
				}
			}
		}
		return true
	})
	return bad, nil
}

// TestPure fails if a file of the package (tests apart) reaches for the
// network, the clock, the global random source, goroutines or locks.
func TestPure(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		bad, err := impurities(name, src)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bad {
			t.Errorf("%s: %s", name, b)
		}
		checked++
	}
	if checked < 5 {
		t.Fatalf("checked %d files; the package has more: is the test in the right directory?", checked)
	}
}

// TestPureBites: the check finds each forbidden thing in a snippet that
// has it, and passes one that has none.
func TestPureBites(t *testing.T) {
	for _, tc := range []struct{ name, src string }{
		{"nats", `package p; import "github.com/nats-io/nats.go"; var _ = nats.Connect`},
		{"sync", `package p; import "sync"; var mu sync.Mutex`},
		{"atomic", `package p; import "sync/atomic"; var n atomic.Int64`},
		{"now", `package p; import "time"; func f() { _ = time.Now() }`},
		{"since", `package p; import "time"; func f(t time.Time) { _ = time.Since(t) }`},
		{"renamed clock", `package p; import tm "time"; func f() { _ = tm.Now() }`},
		{"rand", `package p; import "math/rand"; func f() int { return rand.Intn(3) }`},
		{"rand v2", `package p; import "math/rand/v2"; func f() int { return rand.N(3) }`},
		{"goroutine", `package p; func f() { go f() }`},
	} {
		bad, err := impurities(tc.name+".go", []byte(tc.src))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(bad) == 0 {
			t.Errorf("%s: nothing found in %q", tc.name, tc.src)
		}
	}
	clean := `package p; import ("time"; "math/rand/v2"); func f(r *rand.Rand, d time.Duration) int { _ = d * time.Millisecond; return r.IntN(3) }`
	if bad, err := impurities("clean.go", []byte(clean)); err != nil || len(bad) != 0 {
		t.Errorf("clean snippet: %v, %v; want nothing", bad, err)
	}
}
