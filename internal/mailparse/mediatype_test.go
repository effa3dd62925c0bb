package mailparse

import (
	"net/mail"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestParseParams(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		value   string
		params  map[string]string
		warning bool
	}{
		{`text/plain; charset="utf-8"; format=flowed`, "text/plain",
			map[string]string{"charset": "utf-8", "format": "flowed"}, false},
		// mime.ParseMediaType rejects the unquoted "=" and would lose the boundary.
		{`multipart/mixed; boundary=----=_Part_1; charset="a\"b"`, "multipart/mixed",
			map[string]string{"boundary": "----=_Part_1", "charset": `a"b`}, false},
		{`text/plain; name="a;b.txt"; junk`, "text/plain", map[string]string{"name": "a;b.txt"}, false},
		{`application/pdf; name="unterminated`, "application/pdf", map[string]string{"name": "unterminated"}, false},
		{`TEXT/Plain; CHARSET=utf-8; charset=latin1`, "text/plain", map[string]string{"charset": "utf-8"}, true},
		{`attachment; filename*=iso-8859-1''%E9t%E9.txt`, "attachment", map[string]string{"filename": "été.txt"}, false},
		{`attachment; filename*0*=iso-8859-1''%E9t; filename*1=e.txt`, "attachment",
			map[string]string{"filename": "ét" + "e.txt"}, false},
		{`attachment; filename*0="long "; filename*1="name.pdf"`, "attachment", map[string]string{"filename": "long name.pdf"}, false},
		{`attachment; filename="=?UTF-8?B?w7xiZXIucGRm?="`, "attachment", map[string]string{"filename": "über.pdf"}, false},
		{`attachment; filename*=x-unknown''abc`, "attachment", map[string]string{"filename": "abc"}, true},
	}
	for _, tc := range tests {
		p := newParser(&Message{}, nil)
		value, params := p.parseParams("part 1", "Content-Type", tc.in)
		assert.Equal(t, tc.value, value, tc.in)
		assert.Equal(t, tc.params, params, tc.in)
		assert.Empty(t, p.problems, "odd parameters are read whole: %s", tc.in)
		assert.Equal(t, tc.warning, len(p.warnings) > 0, "%s: %v", tc.in, p.warnings)
	}
}

func TestMediaTypeDefaults(t *testing.T) {
	t.Parallel()
	p := newParser(&Message{}, nil)
	mt, _ := p.mediaType("body", "", "text/plain")
	assert.Equal(t, "text/plain", mt)
	mt, _ = p.mediaType("body", "text; charset=utf-8", "text/plain")
	assert.Equal(t, "text/plain", mt)
	assert.Empty(t, p.warnings)
	mt, _ = p.mediaType("body", "garbage", "message/rfc822")
	assert.Equal(t, "message/rfc822", mt)
	assert.Len(t, p.warnings, 1)
	assert.Empty(t, p.problems)
}

func TestMsgIDs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []string
	}{
		{"<a@x>", []string{"a@x"}},
		{"<a@x> <b@y>\t<c@z>", []string{"a@x", "b@y", "c@z"}},
		{"<a@x>,<b@y>", []string{"a@x", "b@y"}},
		{"(Outlook) <a@x> (comment <b@y>)", []string{"a@x", "b@y"}},
		{"<folded\n @x>", []string{"folded@x"}},
		{"<cut@x", []string{"cut@x"}},
		{"<>  <a@x>", []string{"a@x"}},
		{"bare@x other@y", []string{"bare@x", "other@y"}},
		{"(comment) bare@x", []string{"bare@x"}},
		{"", nil},
		{"   ", nil},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, msgIDs(tc.in), "%q", tc.in)
	}
}

func TestParseDateFallbacks(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"Mon, 2 Jan 2006 15:04:05 -0700",
		"Mon, 2 Jan 2006 15:04:05 -0700 (MST)",
		"2006-01-02T15:04:05-07:00",
		"2006-01-02 15:04:05 -0700",
		"Mon,  2 Jan  2006 15:04:05   -0700",
	} {
		got, err := parseDate(in)
		if assert.NoError(t, err, in) {
			assert.Equal(t, "2006-01-02T22:04:05Z", got.UTC().Format("2006-01-02T15:04:05Z"), in)
		}
	}
	_, err := parseDate("yesterday")
	assert.Error(t, err)
}

// parseDate's shortcut for the usual form gives what net/mail gives, and so do
// its misses.
func TestParseDateAgreesWithNetMail(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"Mon, 02 Nov 2026 10:00:00 +0000",
		"Tue, 2 Nov 2026 10:00:00 +0130",
		"Wed, 31 Dec 1969 23:59:59 -1200",
		"Mon, 2 Jan 2006 15:04 -0700",
		"Mon, 2 Jan 06 15:04:05 -0700",
		"Mon, 2 Jan 2006 15:04:05 GMT",
		"Mon, 2 Jan 2006 15:04:05 -0700 (MST)",
		"Mon, 32 Jan 2006 15:04:05 -0700",
		"2 Jan 2006 15:04:05 -0700",
	} {
		want, wantErr := mail.ParseDate(in)
		got, err := parseDate(in)
		if wantErr != nil {
			continue // parseDate's own fallbacks may read more than net/mail
		}
		if !assert.NoError(t, err, in) {
			continue
		}
		assert.True(t, want.Equal(got), "%q: %v, net/mail %v", in, got, want)
		_, wantOffset := want.Zone()
		_, offset := got.Zone()
		assert.Equal(t, wantOffset, offset, in)
	}
}
