package serversync_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEveryCodeIsListed reads the source of every package of the module and fails
// where a code is given as a bare string instead of a constant of codes.go, where
// a code constant is not one of them, or where a listed code is never used: the
// list in codes.go is then exactly the codes a host can meet.
func TestEveryCodeIsListed(t *testing.T) {
	fset := token.NewFileSet()
	listFile, err := parser.ParseFile(fset, "codes.go", nil, 0)
	require.NoError(t, err)
	listed := map[string]string{} // value → constant name
	names := map[string]bool{}
	for _, decl := range listFile.Decls {
		gen, ok := decl.(*ast.GenDecl)
		if !ok || gen.Tok != token.CONST {
			continue
		}
		for _, spec := range gen.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				value, err := strconv.Unquote(vs.Values[i].(*ast.BasicLit).Value)
				require.NoError(t, err)
				require.True(t, strings.HasPrefix(name.Name, "Code"), "%s in codes.go is no code", name.Name)
				require.NotContains(t, listed, value, "%s and %s share a value", name.Name, listed[value])
				listed[value], names[name.Name] = name.Name, true
			}
		}
	}
	require.Greater(t, len(listed), 40)

	var problems []string
	used := map[string]bool{} // identifiers seen outside codes.go
	report := func(n ast.Node, format string, args ...any) {
		problems = append(problems, fset.Position(n.Pos()).String()+": "+strings.TrimSpace(fmt.Sprintf(format, args...)))
	}
	// checkCode reports a code given other than by a listed constant. Variables
	// (code := …) are fine: what they are assigned is checked where it is written.
	checkCode := func(expr ast.Expr) {
		switch e := expr.(type) {
		case *ast.BasicLit:
			// Our codes are snake case; a protocol's own response codes (POP3's
			// "SYS/TEMP", IMAP's "NONEXISTENT") are not ours to list.
			if value, err := strconv.Unquote(e.Value); err == nil && snakeCase.MatchString(value) {
				if name, ok := listed[value]; ok {
					report(e, "code %s written as a string: use serversync.%s", e.Value, name)
				} else {
					report(e, "code %s is not in codes.go: add it there, with when it happens and what fixes it", e.Value)
				}
			}
		case *ast.Ident:
			if strings.HasPrefix(e.Name, "Code") && e.Name != "Code" && !names[e.Name] {
				report(e, "code constant %s is not in codes.go", e.Name)
			}
		case *ast.SelectorExpr:
			if strings.HasPrefix(e.Sel.Name, "Code") && e.Sel.Name != "Code" && !names[e.Sel.Name] {
				report(e, "code constant %s is not in codes.go", e.Sel.Name)
			}
		}
	}
	isCodeName := func(expr ast.Expr) bool {
		switch e := expr.(type) {
		case *ast.Ident:
			return e.Name == "code" || e.Name == "Code"
		case *ast.SelectorExpr:
			return e.Sel.Name == "Code"
		}
		return false
	}

	err = filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != "." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || path == "codes.go" {
			return nil
		}
		file, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		// Fixtures of the store conformance suite are sample data, not codes returned.
		if file.Name.Name == "storetest" {
			return nil
		}
		ast.Inspect(file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.Ident:
				used[n.Name] = true
			case *ast.CallExpr:
				// connector.Error(op, kind, scope, code, err) and Syncer.raise(ctx, w, level, scope, code, …).
				switch name := callName(n.Fun, file.Name.Name); {
				case name == "connector.Error" && len(n.Args) == 5:
					checkCode(n.Args[3])
				case name == "serversync.raise" && len(n.Args) == 7:
					checkCode(n.Args[4])
				}
			case *ast.KeyValueExpr:
				if isCodeName(n.Key) {
					checkCode(n.Value)
				}
			case *ast.AssignStmt:
				for i, lhs := range n.Lhs {
					if isCodeName(lhs) && len(n.Rhs) == len(n.Lhs) {
						checkCode(n.Rhs[i])
					}
				}
			case *ast.BinaryExpr:
				if isCodeName(n.X) {
					checkCode(n.Y)
				}
			case *ast.SwitchStmt:
				if n.Tag != nil && isCodeName(n.Tag) {
					for _, stmt := range n.Body.List {
						for _, expr := range stmt.(*ast.CaseClause).List {
							checkCode(expr)
						}
					}
				}
			}
			return true
		})
		return nil
	})
	require.NoError(t, err)
	assert.Empty(t, problems, "codes outside the list of codes.go:\n%s", strings.Join(problems, "\n"))
	for name := range names {
		assert.True(t, used[name], "%s is listed but nothing returns it: remove it from codes.go", name)
	}
}

// snakeCase is the form of every code of this library.
var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// callName is pkg.Func for a call of a package's function (or of a method, with
// the package the call is written in), as far as syntax tells.
func callName(fun ast.Expr, pkg string) string {
	switch f := fun.(type) {
	case *ast.Ident:
		return pkg + "." + f.Name
	case *ast.SelectorExpr:
		if x, ok := f.X.(*ast.Ident); ok && x.Name == "connector" {
			return "connector." + f.Sel.Name
		}
		return pkg + "." + f.Sel.Name
	}
	return ""
}
