package demoserver

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var testUsers = map[string]string{"alice@example.test": "alice-pass", "bob@example.test": "bob-pass"}

// submit sends one message from alice to bob with the given Message-ID.
func submit(s *Server, messageID string) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(s.CAPEM))
	c, err := smtp.DialTLS(fmt.Sprintf("%s:%d", s.Host, s.SMTPPort), &tls.Config{RootCAs: pool, ServerName: s.Host})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "alice@example.test", "alice-pass")); err != nil {
		return err
	}
	msg := "From: alice@example.test\r\nTo: bob@example.test\r\nSubject: hi\r\nMessage-ID: <" + messageID + ">\r\n\r\nhello\r\n"
	return c.SendMail("alice@example.test", []string{"bob@example.test"}, strings.NewReader(msg))
}

func TestDeliveriesCountMessagesPerMessageID(t *testing.T) {
	s, err := Start(testUsers)
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, submit(s, "once@example.test"))
	require.NoError(t, submit(s, "twice@example.test"))
	require.NoError(t, submit(s, "twice@example.test"))
	assert.Equal(t, map[string]int{"once@example.test": 1, "twice@example.test": 2}, s.Deliveries())
	inbox, err := s.Messages("bob@example.test", "INBOX")
	require.NoError(t, err)
	assert.Len(t, inbox, 3)
}

// A delayed reply comes after the message is delivered, and Close does not wait
// the delay out.
func TestReplyDelayHoldsTheReplyAfterDelivery(t *testing.T) {
	s, err := Start(testUsers)
	require.NoError(t, err)
	s.SetReplyDelay(time.Hour)
	replied := make(chan error, 1)
	go func() { replied <- submit(s, "held@example.test") }()
	require.Eventually(t, func() bool { return s.Deliveries()["held@example.test"] == 1 }, 30*time.Second, 10*time.Millisecond,
		"the message is delivered before the reply")
	select {
	case err := <-replied:
		t.Fatalf("the server replied at once (err %v), not after the delay", err)
	case <-time.After(200 * time.Millisecond):
	}

	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("Close waited for the delayed reply")
	}
	assert.Error(t, <-replied, "the client never got its 250")
}
