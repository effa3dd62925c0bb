package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The README's first command: it must keep working, and running it again on the same
// data directory must reuse what is there rather than fail on duplicates. The second
// run's demo server is new but seeded with the same messages (same Message-IDs):
// none of them may be tracked again.
func TestQuickstart(t *testing.T) {
	dir := t.TempDir()
	for run := 1; run <= 2; run++ {
		var out bytes.Buffer
		err := runQuickstart(context.Background(), options{dataDir: dir}, &out)
		text := out.String()
		require.NoError(t, err, "run %d:\n%s", run, text)

		// The demo server's ports, and the TLS mode and credentials filled in on save.
		assert.Regexp(t, `incoming\s+127\.0\.0\.1:[1-9][0-9]*\s+TLS Implicit\s+credentials Mailbox`, text)
		assert.Regexp(t, `outgoing\s+127\.0\.0\.1:[1-9][0-9]*\s+TLS Implicit\s+credentials Mailbox`, text)
		for _, email := range []string{"alice@contoso.test", "support@contoso.test"} {
			line := tableLine(text, "MAILBOX", email)
			assert.Contains(t, line, "Approved", email)
			assert.Contains(t, line, "Success", email)
			assert.Regexp(t, `enabled\s+enabled`, line, email)
			assert.Contains(t, line, "[REDACTED]", email)
		}
		assert.NotContains(t, text, "alice-password")
		assert.NotContains(t, text, "support-password")

		if run == 1 {
			assert.Contains(t, text, "initial sync done in")
			assert.Contains(t, text, ": 200 messages tracked\n")
		} else {
			assert.Contains(t, text, ": 0 messages tracked, 200 skipped: tracked by an earlier run\n")
		}
		assert.Contains(t, text, `sent      "Order 1042 has shipped`)
		assert.Regexp(t, `arrived   in support@contoso\.test and tracked.*\n.*correlated to the sent email by tracking-token, so regarding case CAS-01042`, text)
		// ACT: the appointment saved here reached the CalDAV server, and the
		// server's edit came back.
		assert.Regexp(t, `act\s+https://127\.0\.0\.1:[1-9][0-9]*/\s+CalDAV/CardDAV`, text)
		assert.Regexp(t, `act       appointment "Contract review with Fabrikam" saved here, on the CalDAV server as /alice@contoso\.test/calendars/events/\S+\.ics\n`, text)
		assert.Regexp(t, `act       edited on the server, back here as version [2-9]: "Contract review with Fabrikam \(moved\)"`, text)
		assert.Regexp(t, `enabled\s+enabled\s+enabled`, tableLine(text, "MAILBOX", "alice@contoso.test"), "alice's ACT enabled")
		assert.Contains(t, text, "stopped   the Syncer, gracefully")

		// Each run adds its own test email, sent once and tracked once, correlated to
		// the sent one; the seeded messages stay tracked once whatever the number of
		// runs, with the three replies of the sample thread correlated.
		count, correlated := activityRow(t, text, "alice@contoso.test", "Incoming", "Tracked")
		assert.Equal(t, [2]int{100, 0}, [2]int{count, correlated}, "alice's incoming, run %d", run)
		count, _ = activityRow(t, text, "alice@contoso.test", "Outgoing", "Sent")
		assert.Equal(t, run, count, "alice's sent, run %d", run)
		count, correlated = activityRow(t, text, "support@contoso.test", "Incoming", "Tracked")
		assert.Equal(t, [2]int{100 + run, 3 + run}, [2]int{count, correlated}, "support's incoming, run %d", run)
	}
}

func TestSplitHostPort(t *testing.T) {
	for _, tt := range []struct {
		in   string
		host string
		port int
		err  bool
	}{
		{in: "mail.example.test", host: "mail.example.test"},
		{in: "mail.example.test:993", host: "mail.example.test", port: 993},
		{in: "[::1]:143", host: "::1", port: 143},
		{in: "[::1]", host: "::1"},
		{in: "mail.example.test:imap", err: true},
		{in: "mail.example.test:0", err: true},
	} {
		host, port, err := splitHostPort(tt.in)
		if tt.err {
			assert.Error(t, err, tt.in)
			continue
		}
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.host, host, tt.in)
		assert.Equal(t, tt.port, port, tt.in)
	}
}

func TestRealServerFlags(t *testing.T) {
	err := runQuickstart(context.Background(), options{dataDir: t.TempDir(), imap: "127.0.0.1:1"}, &bytes.Buffer{})
	assert.ErrorContains(t, err, "-imap needs -user")
	err = runQuickstart(context.Background(), options{dataDir: t.TempDir(), imap: "127.0.0.1:1", user: "a@example.test"}, &bytes.Buffer{})
	assert.ErrorContains(t, err, "-imap needs -password")
	err = runQuickstart(context.Background(), options{dataDir: t.TempDir(), user: "a@example.test"}, &bytes.Buffer{})
	assert.ErrorContains(t, err, "go with -imap")
}

// tableLine returns the line mentioning needle in the table whose header starts
// with header.
func tableLine(text, header, needle string) string {
	_, table, _ := strings.Cut(text, "\n"+header)
	table, _, _ = strings.Cut(table, "\n\n")
	for line := range strings.SplitSeq(table, "\n") {
		if strings.Contains(line, needle) {
			return line
		}
	}
	return ""
}

// activityRow reads one line of the activities table: COUNT and CORRELATED.
func activityRow(t *testing.T, text, mailbox, direction, status string) (count, correlated int) {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(mailbox) + `\s+` + direction + `\s+` + status + `\s+(\d+)\s+(\d+)$`)
	m := re.FindStringSubmatch(text)
	require.NotNil(t, m, "no %s %s %s line in the activities table", mailbox, direction, status)
	count, _ = strconv.Atoi(m[1])
	correlated, _ = strconv.Atoi(m[2])
	return count, correlated
}
