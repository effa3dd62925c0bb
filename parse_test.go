package serversync

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testdata/mail holds ordinary mail as real senders shape it: cron and web-form
// mail without Date or Message-ID, scripts and gateways that name their text part,
// Apple Mail's inline attachments, Outlook's "a; b" address lists. Each is read as a
// mail client shows it, and none of it is "could not be parsed".
func TestParseRealWorldMail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file        string
		text, html  string   // the bodies, exactly
		attachments []string // filenames, in order
		warnings    []string // exactly the ParseWarnings
		rawKept     bool     // a warning says something was read by a guess
	}{{
		file:     "cron-no-date.eml",
		text:     "backup finished: 14 files, 2.1 GB\n",
		warnings: []string{"header: no Message-ID", "header: no Date"},
	}, {
		file:     "webform-no-date-no-message-id.eml",
		html:     "<p>Name: Renée Dupont</p><p>Message: Please call me back about the quote.</p>\n",
		warnings: []string{"header: no Message-ID", "header: no Date"},
	}, {
		file:        "script-inline-report.eml",
		text:        "Open receivables: 42 invoices, 18,250.00 EUR.\nOldest: INV-2291, 63 days.\n",
		attachments: []string{"receivables.csv"},
		warnings:    []string{"header: no Message-ID", "header: no Date"},
	}, {
		file:     "gateway-name-parameter.eml",
		text:     "Job 2231: 12 pages scanned to \\\\fileserver\\scans\\2231.pdf\n",
		warnings: []string{"header: no Date"},
	}, {
		file:        "apple-mail-inline-attachment.eml",
		text:        "Hi Bob, my notes are attached.\n",
		attachments: []string{"notes.txt", ""},
		warnings:    []string{"header: no Date"},
	}, {
		file:        "html-only-with-inline-text-file.eml",
		html:        "<h1>Release 4.2</h1><p>The changelog is attached.</p>",
		attachments: []string{"CHANGELOG.txt"},
		warnings:    []string{"header: no Date"},
	}, {
		file:     "outlook-semicolons-no-date.eml",
		text:     "Please ship order 4711 on Monday. \n",
		html:     "<html><body><p>Please ship order 4711 on Monday.</p></body></html>",
		warnings: []string{"header: To: mail: expected comma; parsed leniently", "header: no Date"},
		rawKept:  true,
	}, {
		file:        "explicit-text-attachment.eml",
		attachments: []string{"error.log"},
	}, {
		file: "unknown-charset-no-date.eml",
		text: "All systems nominal.\n",
		warnings: []string{"header: no Date",
			`body: unknown charset "x-legacy-roman": charset "x-legacy-roman": htmlindex: invalid encoding name; bytes kept`},
		rawKept: true,
	}}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile(filepath.Join("testdata", "mail", tc.file))
			require.NoError(t, err)
			a := &EmailActivity{}
			parseMessage(raw, a, 1<<20)

			assert.Empty(t, a.ParseError, "ordinary mail is not broken mail")
			assert.Equal(t, tc.warnings, a.ParseWarnings)
			if tc.rawKept {
				assert.Equal(t, raw, a.Raw)
			} else {
				assert.Nil(t, a.Raw, "only header fields are missing: nothing to keep twice")
			}
			assert.Equal(t, tc.text, a.TextBody)
			assert.Equal(t, tc.html, a.HTMLBody)
			var names []string
			for _, att := range a.Attachments {
				names = append(names, att.Filename)
			}
			assert.Equal(t, tc.attachments, names)
			assert.NotEmpty(t, a.From.Email)
			assert.NotEmpty(t, a.Subject)
		})
	}
}
