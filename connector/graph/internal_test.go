package graph

import (
	"encoding/base64"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector"
)

func TestAddBcc(t *testing.T) {
	msg := "From: alice@contoso.test\r\nTo: Bob <bob@example.test>, carol@example.test\r\nCc: \"Dan D.\" <DAN@example.test>\r\nSubject: x\r\n\r\nbody\r\n"
	assert.Equal(t, msg, string(connector.AddBcc([]byte(msg), []string{"bob@example.test", "Carol@Example.test", "dan@example.test"})),
		"every envelope recipient is in the headers: the message goes as it is")
	got := string(connector.AddBcc([]byte(msg), []string{"bob@example.test", "eve@example.test", "frank@example.test", "eve@example.test"}))
	assert.Equal(t, "Bcc: eve@example.test, frank@example.test\r\n"+msg, got)

	lf := "To: bob@example.test\nSubject: x\n\nbody\n"
	assert.Equal(t, "Bcc: eve@example.test\n"+lf, string(connector.AddBcc([]byte(lf), []string{"eve@example.test"})))

	already := "To: bob@example.test\r\nBcc: eve@example.test\r\n\r\nbody\r\n"
	assert.Equal(t, already, string(connector.AddBcc([]byte(already), []string{"eve@example.test"})))
}

func TestTokenClaims(t *testing.T) {
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"roles":["Mail.ReadWrite","Mail.Send"],"tid":"t-1"}`))
	c, ok := tokenClaims("eyJhbGciOiJSUzI1NiJ9." + payload + ".c2ln")
	require.True(t, ok)
	assert.Equal(t, []string{"Mail.ReadWrite", "Mail.Send"}, c.permissions())
	assert.Equal(t, "t-1", c.Tid)

	payload = base64.RawURLEncoding.EncodeToString([]byte(`{"scp":"Mail.ReadWrite User.Read"}`))
	c, ok = tokenClaims("h." + payload + ".s")
	require.True(t, ok)
	assert.Equal(t, []string{"Mail.ReadWrite", "User.Read"}, c.permissions())

	_, ok = tokenClaims("opaque-token")
	assert.False(t, ok)
}

func TestCursorDecode(t *testing.T) {
	c, err := decodeCursor(cursor{Folder: "inbox", Link: "https://graph.microsoft.com/v1.0/me/x", Skip: 3}.encode())
	require.NoError(t, err)
	assert.Equal(t, &cursor{V: 1, Folder: "inbox", Link: "https://graph.microsoft.com/v1.0/me/x", Skip: 3}, c)
	_, err = decodeCursor([]byte(`{"v":1,"uidvalidity":5,"uid":7`))
	assert.ErrorContains(t, err, "bad_cursor")
	_, err = decodeCursor([]byte(`{"v":2}`))
	assert.ErrorContains(t, err, "bad_cursor")
	c, err = decodeCursor(nil)
	assert.NoError(t, err)
	assert.Nil(t, c)
}

func TestURLs(t *testing.T) {
	base, err := baseURL(serversync.Endpoint{URL: "https://graph.microsoft.com/"})
	require.NoError(t, err)
	m := &mailbox{base: base, user: "/users/" + url.PathEscape("o'neil+tag@contoso.test")}
	assert.Equal(t, "https://graph.microsoft.com/v1.0/users/o%27neil+tag@contoso.test/messages/AAMk%2Fab+c=/$value", m.url(m.valuePath("AAMk/ab+c="), nil))
	assert.Equal(t, "https://graph.microsoft.com/v1.0/users/o%27neil+tag@contoso.test/mailFolders?%24filter=displayName%20eq%20%27it%27%27s%27",
		m.url(m.user+"/mailFolders", url.Values{"$filter": {"displayName eq 'it''s'"}}))
	assert.True(t, m.sameOrigin("https://GRAPH.microsoft.com/v1.0/me/x"))
	assert.False(t, m.sameOrigin("https://graph.microsoft.com:8443/v1.0/me/x"))
	assert.False(t, m.sameOrigin("http://graph.microsoft.com/v1.0/me/x"))
	assert.False(t, m.sameOrigin("https://graph.microsoft.com.evil.test/v1.0"))

	base, err = baseURL(serversync.Endpoint{Host: "127.0.0.1", Port: 8443})
	require.NoError(t, err)
	assert.Equal(t, "https://127.0.0.1:8443/v1.0", base.String())
	_, err = baseURL(serversync.Endpoint{URL: "ftp://x"})
	assert.ErrorContains(t, err, "bad_target")
}
