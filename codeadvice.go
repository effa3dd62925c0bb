package serversync

import (
	_ "embed"
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"strings"
	"sync"
)

// codesSource is codes.go itself: each code's documentation is its advice, so the
// two never drift apart.
//
//go:embed codes.go
var codesSource string

// CodeAdvice returns what a code means and what fixes it, for a person (a
// monitoring page, an alert e-mail): the documentation of the code in codes.go,
// without the constant's name. It returns "" for a code that is not listed.
func CodeAdvice(code string) string { return codeAdvice()[code] }

var codeAdvice = sync.OnceValue(func() map[string]string {
	advice := make(map[string]string)
	f, err := parser.ParseFile(token.NewFileSet(), "codes.go", codesSource, parser.ParseComments)
	if err != nil {
		return advice // codes.go compiles, so it parses; nothing to advise otherwise
	}
	for _, decl := range f.Decls {
		gen, ok := decl.(*ast.GenDecl)
		if !ok || gen.Tok != token.CONST {
			continue
		}
		for _, spec := range gen.Specs {
			vs, ok := spec.(*ast.ValueSpec)
			if !ok || vs.Doc == nil || len(vs.Names) != 1 || len(vs.Values) != 1 {
				continue
			}
			lit, ok := vs.Values[0].(*ast.BasicLit)
			if !ok {
				continue
			}
			value, err := strconv.Unquote(lit.Value)
			if err != nil {
				continue
			}
			text := strings.Join(strings.Fields(vs.Doc.Text()), " ")
			text = strings.TrimPrefix(text, vs.Names[0].Name+":")
			text = strings.TrimSpace(text)
			if text != "" {
				text = strings.ToUpper(text[:1]) + text[1:]
			}
			advice[value] = text
		}
	}
	return advice
})
