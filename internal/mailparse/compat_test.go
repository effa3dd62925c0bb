package mailparse_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/internal/mailparse"
)

// mailparse mirrors serversync's types so that serversync can import it; these
// conversions stop compiling the moment either side changes a field.
var (
	_ = serversync.Address(mailparse.Address{})
	_ = serversync.Attachment(mailparse.Attachment{})
	_ = mailparse.TokenFormat(serversync.TrackingTokenFormat{})
)

func TestTokenDefaultsMatchServersync(t *testing.T) {
	t.Parallel()
	assert.Equal(t, serversync.TrackingTokenPrefixDefault, mailparse.TokenPrefixDefault)
	assert.Equal(t, serversync.TrackingTokenUserDigitsDefault, mailparse.TokenUserDigitsDefault)
	assert.Equal(t, serversync.TrackingTokenCounterDigitsDefault, mailparse.TokenCounterDigitsDefault)

	format := mailparse.TokenFormat(serversync.DefaultOrgSettings().TrackingToken)
	assert.Equal(t, "CRM:0000001002", mailparse.FormatToken(format, 1, 2))
}
