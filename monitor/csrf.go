package monitor

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/http"
	"time"
)

// csrfTTL is how long a page's tokens stay valid.
const csrfTTL = 12 * time.Hour

// csrf issues and checks session-less tokens: a random nonce and the time it was
// issued, signed with HMAC-SHA256 under the handler's key (and bound to
// Options.CSRFBinding's value when set). Only a page this handler served holds
// one, and another origin cannot read that page.
type csrf struct {
	key     []byte
	binding func(*http.Request) string
	now     func() time.Time
}

const (
	nonceLen = 16
	macLen   = sha256.Size
)

func (c *csrf) mac(r *http.Request, body []byte) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte("serversync-monitor-csrf\x00"))
	if c.binding != nil {
		m.Write([]byte(c.binding(r)))
	}
	m.Write([]byte{0})
	m.Write(body)
	return m.Sum(nil)
}

func (c *csrf) token(r *http.Request) string {
	body := make([]byte, nonceLen+8, nonceLen+8+macLen)
	_, _ = rand.Read(body[:nonceLen])
	binary.BigEndian.PutUint64(body[nonceLen:], uint64(c.now().Unix()))
	return base64.RawURLEncoding.EncodeToString(append(body, c.mac(r, body)...))
}

var (
	errNoToken  = errors.New("the form carries no token")
	errBadToken = errors.New("the form's token is not valid")
	errOldToken = errors.New("the form's token expired")
)

func (c *csrf) verify(r *http.Request, token string) error {
	if token == "" {
		return errNoToken
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) != nonceLen+8+macLen {
		return errBadToken
	}
	body, sum := raw[:nonceLen+8], raw[nonceLen+8:]
	if !hmac.Equal(sum, c.mac(r, body)) {
		return errBadToken
	}
	issued := time.Unix(int64(binary.BigEndian.Uint64(body[nonceLen:])), 0)
	if age := c.now().Sub(issued); age > csrfTTL || age < -time.Minute {
		return errOldToken
	}
	return nil
}
