package serversync

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestRootImportsNoImplementation keeps the dependency arrow pointing one way: stores
// and connectors import the root package (for its types and interfaces), never the
// reverse. A root that imported store/sqlite or connector/imapconn would force every host
// to compile them, and would make an import cycle the day that package needs the root.
func TestRootImportsNoImplementation(t *testing.T) {
	const module = "github.com/serversync/serversync/"
	// What the root may use of this module: credential types and the MIME parser,
	// neither of which knows about stores, connectors or the Syncer.
	allowed := map[string]bool{
		module + "auth":               true,
		module + "internal/mailparse": true,
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue // tests may wire real implementations together
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, spec := range f.Imports {
			path, _ := strconv.Unquote(spec.Path.Value)
			if strings.HasPrefix(path, module) && !allowed[path] {
				t.Errorf("%s imports %s: the root package must not depend on an implementation package; move the code that needs it there, or define an interface here", name, path)
			}
		}
	}
}
