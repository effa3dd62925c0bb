package benchmail

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/serversync/serversync/internal/mailparse"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestMessagesParseCleanly checks the corpus is what the benchmarks claim: each
// kind parses without error or warning, with its non-ASCII header decoded, its
// bodies and its attachment, and message i is the same every time.
func TestMessagesParseCleanly(t *testing.T) {
	kinds := map[string]int{}
	for i := range 60 {
		raw := Message(i, "bench@example.test")
		assert.Equal(t, raw, Message(i, "bench@example.test"), "deterministic")
		assert.NotContains(t, string(raw), "\n\n", "CRLF only")
		m, err := mailparse.Parse(bytes.NewReader(raw), nil)
		require.NoError(t, err, "message %d", i)
		assert.Empty(t, m.ParseWarnings, "message %d", i)
		assert.Equal(t, "bench@example.test", m.To[0].Email)
		assert.NotEmpty(t, m.TextBody)
		if i%2 == 0 {
			assert.True(t, strings.HasPrefix(m.Subject, "Angebot für Q3 – Rückfrage №"), m.Subject)
		}
		switch {
		case i%20 == 0:
			kinds["attachment"]++
			require.Len(t, m.Attachments, 1, "message %d", i)
			assert.Equal(t, "report.pdf", m.Attachments[0].Filename)
			assert.NotEmpty(t, m.HTMLBody)
		case i%3 == 0:
			kinds["alternative"]++
			assert.Contains(t, m.HTMLBody, "<p>")
			assert.Empty(t, m.Attachments)
		default:
			kinds["plain"]++
			assert.Empty(t, m.HTMLBody)
		}
	}
	assert.Equal(t, map[string]int{"attachment": 3, "alternative": 19, "plain": 38}, kinds)
	assert.Contains(t, string(Message(1, "x@example.test")), "=?utf-8?q?Zo=C3=AB_=C3=98rsted?=")
}
