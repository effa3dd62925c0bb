package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The README's first command: it must keep working, and running it again on the same
// data directory must reuse what is there rather than fail on duplicates.
func TestQuickstart(t *testing.T) {
	dir := t.TempDir()
	for run := range 2 {
		var out bytes.Buffer
		require.NoError(t, runQuickstart(context.Background(), dir, &out), "run %d", run+1)
		text := out.String()
		assert.Contains(t, text, "imap.contoso.test:993")
		assert.Contains(t, text, "smtp.contoso.test:587")
		for _, email := range []string{"alice@contoso.test", "support@contoso.test"} {
			line := lineWith(text, email)
			assert.Contains(t, line, "Approved", email)
			assert.Contains(t, line, "[REDACTED]", email)
		}
		assert.NotContains(t, text, "alice-password")
	}
}

func lineWith(text, needle string) string {
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, needle) {
			return line
		}
	}
	return ""
}
