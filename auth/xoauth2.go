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

// MechanismError is an error a SASL mechanism returned itself (the server's
// XOAUTH2 error challenge, say), as opposed to a connection that failed: the
// credentials were refused.
type MechanismError struct{ Err error }

func (e *MechanismError) Error() string { return e.Err.Error() }
func (e *MechanismError) Unwrap() error { return e.Err }

// MarkMechanismErrors wraps c so that the errors its Next returns are
// *MechanismError: protocol clients return them as they are, indistinguishable
// from a broken connection otherwise.
func MarkMechanismErrors(c sasl.Client) sasl.Client { return markedClient{c} }

type markedClient struct{ sasl.Client }

func (c markedClient) Next(challenge []byte) ([]byte, error) {
	resp, err := c.Client.Next(challenge)
	if err != nil {
		err = &MechanismError{err}
	}
	return resp, err
}
