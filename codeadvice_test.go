package serversync_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/serversync/serversync"
)

func TestCodeAdvice(t *testing.T) {
	assert.Equal(t, "The mailbox has no email server profile. Set one, then run Test & Enable.",
		serversync.CodeAdvice(serversync.CodeNoProfile))
	for _, code := range []string{serversync.CodeAuthFailed, serversync.CodeTLSRequiredByOrg, serversync.CodeAllMailFiltered,
		serversync.CodeMassFailure, serversync.CodeInternal} {
		advice := serversync.CodeAdvice(code)
		assert.NotEmpty(t, advice, code)
		assert.False(t, strings.HasPrefix(advice, "Code"), "the constant's name is left out: %q", advice)
	}
	assert.Contains(t, serversync.CodeAdvice(serversync.CodeAllMailFiltered), "ChangeIncomingFilter")
	assert.Empty(t, serversync.CodeAdvice("no_such_code"))
}
