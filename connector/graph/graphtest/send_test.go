package graphtest_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/serversync/serversync/connector/graph/graphtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type delivery struct {
	from string
	to   []string
	mime []byte
}

func TestSendMail(t *testing.T) {
	var mu sync.Mutex
	var external []delivery
	e := newEnv(t, &graphtest.Options{Deliver: func(_ context.Context, from string, to []string, mime []byte) error {
		mu.Lock()
		defer mu.Unlock()
		external = append(external, delivery{from, to, mime})
		return nil
	}})
	raw := "From: Alice <alice@contoso.test>\r\nTo: Bob <bob@contoso.test>\r\nCc: dave@fabrikam.test, BOB@contoso.test\r\n" +
		"Bcc: secret@fabrikam.test,\r\n eve@fabrikam.test\r\nSubject: hello\r\nMessage-ID: <hello@contoso.test>\r\n\r\nHi Bob.\r\n"
	text := map[string]string{"Content-Type": "text/plain"}
	r := e.req("POST", user(alice)+"/sendMail", text, b64([]byte(raw)))
	require.Equal(t, http.StatusAccepted, r.status, "%s", r.body)
	assert.Empty(t, r.body)

	withoutBcc := "From: Alice <alice@contoso.test>\r\nTo: Bob <bob@contoso.test>\r\nCc: dave@fabrikam.test, BOB@contoso.test\r\n" +
		"Subject: hello\r\nMessage-ID: <hello@contoso.test>\r\n\r\nHi Bob.\r\n"
	inbox := e.srv.Messages(bob, "inbox")
	require.Len(t, inbox, 1, "one copy for a recipient named twice")
	assert.Equal(t, withoutBcc, string(inbox[0].MIME))
	assert.Equal(t, "<hello@contoso.test>", inbox[0].InternetMessageID)

	sent := e.srv.Messages(alice, "sentitems")
	require.Len(t, sent, 1, "the server keeps the Sent Items copy")
	assert.Equal(t, raw, string(sent[0].MIME), "the sender's copy keeps Bcc, as Exchange does")
	assert.True(t, sent[0].IsRead)

	require.Len(t, external, 1)
	assert.Equal(t, alice, external[0].from)
	assert.Equal(t, []string{"dave@fabrikam.test", "secret@fabrikam.test", "eve@fabrikam.test"}, external[0].to)
	assert.Equal(t, withoutBcc, string(external[0].mime))

	all := e.srv.Sent()
	require.Len(t, all, 1)
	assert.Equal(t, []string{bob, "dave@fabrikam.test", "secret@fabrikam.test", "eve@fabrikam.test"}, all[0].To)
	assert.Equal(t, withoutBcc, string(all[0].MIME))

	// Exchange stamps a Message-ID and From when the client leaves them out.
	r = e.req("POST", user(alice)+"/sendMail", text, b64([]byte("To: bob@contoso.test\r\nSubject: bare\r\n\r\nx\r\n")))
	require.Equal(t, http.StatusAccepted, r.status, "%s", r.body)
	inbox = e.srv.Messages(bob, "inbox")
	require.Len(t, inbox, 2)
	assert.NotEmpty(t, inbox[1].InternetMessageID)
	assert.Equal(t, alice, inbox[1].From)
}

func TestSendMailErrors(t *testing.T) {
	fail := errors.New("postfix is down")
	e := newEnv(t, &graphtest.Options{Deliver: func(context.Context, string, []string, []byte) error { return fail }})
	text := map[string]string{"Content-Type": "text/plain"}
	cases := []struct {
		name, body string
		status     int
		code       string
	}{
		{"not base64", "%%%not base64", http.StatusBadRequest, "ErrorMimeContentInvalidBase64String"},
		{"not MIME", b64([]byte("no header here")), http.StatusBadRequest, "ErrorMimeContentInvalid"},
		{"no recipient", b64([]byte("Subject: x\r\n\r\nbody\r\n")), http.StatusBadRequest, "ErrorInvalidRecipients"},
		{"too large", strings.Repeat("A", graphtest.MaxRequestBody+4), http.StatusRequestEntityTooLarge, "ErrorMessageSizeExceeded"},
		{"Deliver fails", b64([]byte("To: x@fabrikam.test\r\n\r\nbody\r\n")), http.StatusInternalServerError, "ErrorInternalServerError"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.req("POST", user(alice)+"/sendMail", text, tc.body)
			assert.Equal(t, tc.status, r.status, "%s", r.body)
			assert.Equal(t, tc.code, r.errorCode(t))
		})
	}
	assert.Empty(t, e.srv.Sent())
	assert.Empty(t, e.srv.Messages(alice, "sentitems"))
}
