package auth

import (
	"encoding/json"
	"errors"

	"github.com/emersion/go-sasl"
)

// Xoauth2 is the SASL mechanism name of Google's and Microsoft's bearer-token login.
const Xoauth2 = "XOAUTH2"

type xoauth2Client struct{ username, token string }

// NewXoauth2Client returns a SASL client for XOAUTH2, which go-sasl does not ship:
// the initial response is "user=<user>\x01auth=Bearer <token>\x01\x01".
func NewXoauth2Client(username, token string) sasl.Client {
	return &xoauth2Client{username: username, token: token}
}

func (c *xoauth2Client) Start() (string, []byte, error) {
	return Xoauth2, []byte("user=" + c.username + "\x01auth=Bearer " + c.token + "\x01\x01"), nil
}

// Next answers the server's error challenge (a JSON status) with an empty response,
// as the protocol requires, and reports the server's complaint without the token.
func (c *xoauth2Client) Next(challenge []byte) ([]byte, error) {
	var status struct {
		Status string `json:"status"`
	}
	_ = json.Unmarshal(challenge, &status)
	if status.Status != "" {
		return []byte{}, errors.New("auth: XOAUTH2 refused, status " + status.Status)
	}
	return []byte{}, nil
}
