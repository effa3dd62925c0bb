package mailparse

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// mediaType parses a Content-Type value, leniently: mime.ParseMediaType rejects
// whole values for one flaw (an unquoted "=" in a boundary, a duplicate
// parameter), losing the boundary or the charset. Parameter values are RFC 2047-
// and RFC 2231-decoded.
func (p *parser) mediaType(where, v, defaultType string) (string, map[string]string) {
	if strings.TrimSpace(v) == "" {
		return defaultType, nil
	}
	mt, params := p.parseParams(where, "Content-Type", v)
	if !strings.Contains(mt, "/") || strings.ContainsAny(mt, " \t") {
		if mt == "text" {
			return "text/plain", params // seen from old mailers
		}
		p.warnf("%s: Content-Type %q is not a media type; read as %s", where, truncateUTF8(mt, 64), defaultType)
		return defaultType, params
	}
	return mt, params
}

// disposition parses a Content-Disposition value.
func (p *parser) disposition(where, v string) (string, map[string]string) {
	if strings.TrimSpace(v) == "" {
		return "", nil
	}
	return p.parseParams(where, "Content-Disposition", v)
}

// parseParams splits "value; k=v; …" into the lower-cased value and parameters.
func (p *parser) parseParams(where, key, v string) (string, map[string]string) {
	mt, params, err := mime.ParseMediaType(v)
	switch {
	case err == nil:
		// The standard parser drops RFC 2231 sections in charsets other than
		// UTF-8 and ASCII, silently shortening a continued filename; read RFC 2231
		// names ourselves.
		var lenient map[string]string
		for _, name := range []string{"filename", "name"} {
			if !strings.Contains(strings.ToLower(v), name+"*") {
				continue
			}
			if lenient == nil {
				lenient = lenientParams(p, where, v)
			}
			if value := lenient[name]; value != "" {
				params[name] = value
			}
		}
	case errors.Is(err, mime.ErrInvalidMediaParameter):
		// mt is good; only the parameters need a second, lenient look. Common
		// and harmless (an unquoted "=" in a boundary), so not a problem.
		params = lenientParams(p, where, v)
	default:
		p.warn(fmt.Errorf("%s: %s %q: %w; parsed leniently", where, key, truncateUTF8(v, 64), err))
		mt, _, _ = strings.Cut(v, ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
		params = lenientParams(p, where, v)
	}
	for k, value := range params {
		if strings.Contains(value, "=?") {
			// Not allowed in parameters, but Outlook and others encode filenames
			// this way.
			params[k] = p.text(where, value)
		}
	}
	return mt, params
}

// lenientParams reads the parameters after the first ";" of v: names lower-cased,
// the first of duplicates kept, quotes and RFC 2231 encodings and continuations
// undone, anything unparseable skipped.
func lenientParams(p *parser, where, v string) map[string]string {
	params := make(map[string]string)
	type section struct {
		n       int
		value   string
		encoded bool
	}
	continued := make(map[string][]section)

	_, rest, _ := strings.Cut(v, ";")
	for _, item := range splitParams(rest) {
		name, value, ok := strings.Cut(item, "=")
		if !ok {
			continue
		}
		name = strings.ToLower(strings.TrimSpace(name))
		value = unquote(strings.TrimSpace(value))
		if name == "" {
			continue
		}
		encoded := strings.HasSuffix(name, "*")
		name = strings.TrimSuffix(name, "*")
		if base, num, ok := strings.Cut(name, "*"); ok {
			if n, err := strconv.Atoi(num); err == nil && n >= 0 && n < 1000 {
				continued[base] = append(continued[base], section{n, value, encoded})
			}
			continue
		}
		if _, dup := params[name]; dup {
			continue
		}
		if encoded {
			value = p.decode2231(where, value)
		}
		params[name] = value
	}
	for name, sections := range continued {
		if _, dup := params[name]; dup {
			continue
		}
		sort.SliceStable(sections, func(i, j int) bool { return sections[i].n < sections[j].n })
		// RFC 2231 §4.1: the charset is named in the first section only; every
		// encoded section is percent-decoded, the whole then converted once.
		var raw strings.Builder
		charsetName := ""
		for i, s := range sections {
			value := s.value
			if s.encoded && i == 0 {
				if parts := strings.SplitN(value, "'", 3); len(parts) == 3 {
					charsetName, value = parts[0], parts[2]
				}
			}
			if s.encoded {
				if unescaped, err := url.PathUnescape(value); err == nil {
					value = unescaped
				}
			}
			raw.WriteString(value)
		}
		params[name] = p.convertString(where, charsetName, raw.String())
	}
	return params
}

// decode2231 decodes an RFC 2231 extended value: charset'language'percent-encoded.
func (p *parser) decode2231(where, v string) string {
	parts := strings.SplitN(v, "'", 3)
	if len(parts) != 3 {
		return v
	}
	charsetName, v := parts[0], parts[2]
	if unescaped, err := url.PathUnescape(v); err == nil {
		v = unescaped
	}
	return p.convertString(where, charsetName, v)
}

// convertString converts s from the named charset to UTF-8.
func (p *parser) convertString(where, charsetName, s string) string {
	if charsetName == "" || declaresUTF8(charsetName) || declaresASCII(charsetName) {
		return s
	}
	out, err := io.ReadAll(p.charsetReader(where, charsetName, strings.NewReader(s)))
	if err != nil {
		return s
	}
	return string(out)
}

// splitParams splits on semicolons outside quoted strings.
func splitParams(s string) []string {
	var (
		out    []string
		quoted bool
		start  int
	)
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if quoted {
				i++
			}
		case '"':
			quoted = !quoted
		case ';':
			if !quoted {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// unquote removes the quotes of a quoted-string and its backslash escapes; an
// unterminated one keeps everything after its opening quote.
func unquote(s string) string {
	if !strings.HasPrefix(s, `"`) {
		return s
	}
	s = s[1:]
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		case c == '"':
			return b.String()
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
