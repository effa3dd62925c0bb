package serversync

import (
	"cmp"
	"go/ast"
	"go/doc"
	"go/doc/comment"
	"go/parser"
	"go/token"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
)

// TestDocLinksResolve keeps the doc comments' links true. go doc shows [Name] and
// [Type.Method] as links only when that name exists, and otherwise prints the
// brackets as plain text without a word of warning, and go vet does not look: a
// method renamed or never written (once [Admin.Target]) sends a reader looking for
// something that is not there. Every bracketed reference to this module's own
// packages must name something they declare; words in capitals ([REDACTED], IMAP's
// [NONEXISTENT]) are text, not references.
func TestDocLinksResolve(t *testing.T) {
	const module = "github.com/serversync/serversync"
	packages := map[string]*doc.Package{} // by import path; nil: no Go package there
	load := func(importPath string) *doc.Package {
		if p, ok := packages[importPath]; ok {
			return p
		}
		dir := filepath.FromSlash("." + strings.TrimPrefix(importPath, module))
		fset := token.NewFileSet()
		var files []*ast.File
		names, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, name := range names {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
		var p *doc.Package
		if len(files) > 0 {
			var err error
			if p, err = doc.NewFromFiles(fset, files, importPath); err != nil {
				t.Fatal(err)
			}
		}
		packages[importPath] = p
		return p
	}

	err := filepath.WalkDir(".", func(dir string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if dir != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		self := path.Join(module, filepath.ToSlash(dir))
		p := load(self)
		if p == nil {
			return nil
		}
		exists := func(l *comment.DocLink) bool {
			target := p
			if l.ImportPath != "" {
				if l.ImportPath != module && !strings.HasPrefix(l.ImportPath, module+"/") {
					return true // another module's or the standard library's: not ours to check
				}
				if target = load(l.ImportPath); target == nil {
					return false
				}
			}
			return target.Parser().LookupSym(l.Recv, l.Name)
		}
		// Every bracketed name is taken for a reference here, so that the ones go doc
		// would drop are found.
		var find comment.Parser
		find.LookupPackage = p.Parser().LookupPackage
		find.LookupSym = func(recv, name string) bool { return !allCapitals(recv) && !allCapitals(name) }
		for _, f := range p.Filenames {
			file, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ParseComments)
			if err != nil {
				return err
			}
			for _, group := range file.Comments {
				for _, l := range docLinks(find.Parse(group.Text()).Content) {
					if !exists(l) {
						t.Errorf("%s: [%s] names nothing that %s declares: link to what exists, or drop the brackets",
							f, linkText(l), cmp.Or(l.ImportPath, self))
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// docLinks lists the doc links in blocks, however deeply they sit in lists and
// other links' text.
func docLinks(blocks []comment.Block) []*comment.DocLink {
	var links []*comment.DocLink
	var inText func([]comment.Text)
	inText = func(texts []comment.Text) {
		for _, t := range texts {
			switch t := t.(type) {
			case *comment.DocLink:
				links = append(links, t)
				inText(t.Text)
			case *comment.Link:
				inText(t.Text)
			case *comment.Italic, comment.Plain:
			}
		}
	}
	for _, b := range blocks {
		switch b := b.(type) {
		case *comment.Paragraph:
			inText(b.Text)
		case *comment.Heading:
			inText(b.Text)
		case *comment.List:
			for _, item := range b.Items {
				links = append(links, docLinks(item.Content)...)
			}
		}
	}
	return links
}

// linkText is a doc link as written between the brackets.
func linkText(l *comment.DocLink) string {
	name := l.Name
	if l.Recv != "" {
		name = l.Recv + "." + name
	}
	if l.ImportPath != "" {
		name = path.Base(l.ImportPath) + "." + name
	}
	return name
}

// allCapitals reports whether s is a word in capitals, such as a protocol's
// response code, which a comment puts in brackets as the protocol does.
func allCapitals(s string) bool {
	return s != "" && strings.ToUpper(s) == s && strings.IndexFunc(s, unicode.IsLetter) >= 0
}
