// Package purity checks that a decision core is pure: no NATS, no
// network, no clock, no global random source, no goroutines, no locks.
// A core's test calls Check on its own directory.
package purity

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

// Impurities returns what src, a Go file, uses that a pure core may not.
func Impurities(name string, src []byte) ([]string, error) {
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
			bad = append(bad, name+": imports "+path)
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

// Check fails t if a non-test Go file in dir reaches for the network,
// the clock, the global random source, goroutines or locks; it also
// fails if dir holds fewer than min such files, so that it cannot pass
// for looking in the wrong place.
func Check(t testing.TB, dir string, min int) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
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
		bad, err := Impurities(name, src)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bad {
			t.Errorf("%s", b)
		}
		checked++
	}
	if checked < min {
		t.Fatalf("checked %d files in %s; want at least %d", checked, dir, min)
	}
}
