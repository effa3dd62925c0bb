package auth

import (
	"context"
	"errors"
	"fmt"

	"github.com/emersion/go-sasl"
	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/gssapi"
	"github.com/jcmturner/gokrb5/v8/iana/flags"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/spnego"
	"github.com/jcmturner/gokrb5/v8/types"
)

// GSSAPI is the SASL mechanism name of Kerberos V5 (RFC 4752).
const GSSAPI = "GSSAPI"

// Wrap token flags (RFC 4121 section 4.2.2).
const (
	wrapFromAcceptor   = 0x01
	wrapSealed         = 0x02
	wrapAcceptorSubkey = 0x04
)

// securityLayerNone is the RFC 4752 bit for "no security layer": TLS protects the
// connection, and a SASL layer inside it would buy nothing.
const securityLayerNone = 0x01

// gssapiClient is the client side of SASL GSSAPI (RFC 4752) over gokrb5: an
// AP-REQ asking for mutual authentication, the server's AP-REP checked, then the
// security-layer negotiation answered with "no layer" and the authorization
// identity. It holds a ticket for one service and is used for one authentication.
type gssapiClient struct {
	ticket
	authzid string

	authenticator types.Authenticator // ours, to check the AP-REP against
	acceptorKey   *types.EncryptionKey
	step          int
}

// newGSSAPIClient logs in (c.kerberosClient) and asks the KDC for a ticket for
// service/host. The Kerberos client is destroyed before it returns: the ticket and
// its session key are all the exchange needs.
func (c Credentials) newGSSAPIClient(ctx context.Context, service, host, authzid string) (*gssapiClient, error) {
	cl, err := c.kerberosClient(ctx)
	if err != nil {
		return nil, err
	}
	t, err := serviceTicket(cl, service+"/"+host)
	if err != nil {
		return nil, err
	}
	return &gssapiClient{ticket: t, authzid: authzid}, nil
}

// ticket is a service ticket with its session key and the client it was issued to:
// what an AP-REQ is made of.
type ticket struct {
	client     *client.Client // only its Credentials (the client's name) are used
	ticket     messages.Ticket
	sessionKey types.EncryptionKey
}

// serviceTicket asks the KDC for a ticket for spn and destroys cl: the ticket is all
// that is needed afterwards, and a live client renews its TGT in a goroutine.
func serviceTicket(cl *client.Client, spn string) (ticket, error) {
	identity := cl.Credentials // Destroy replaces it with an empty one
	defer cl.Destroy()
	tkt, key, err := cl.GetServiceTicket(spn)
	if err != nil {
		return ticket{}, &KerberosError{Principal: identity.CName().PrincipalNameString() + "@" + identity.Domain(),
			Refused: kdcRefused(err), Err: fmt.Errorf("ticket for %s: %w", spn, err)}
	}
	return ticket{client: &client.Client{Credentials: identity}, ticket: tkt, sessionKey: key}, nil
}

func (g *gssapiClient) Start() (string, []byte, error) {
	token, err := spnego.NewKRB5TokenAPREQ(g.client, g.ticket.ticket, g.sessionKey,
		[]int{gssapi.ContextFlagMutual, gssapi.ContextFlagInteg}, []int{flags.APOptionMutualRequired})
	if err != nil {
		return "", nil, fmt.Errorf("auth: GSSAPI: build AP-REQ: %w", err)
	}
	// Our own authenticator, to match the server's AP-REP against and to know the
	// sequence number our wrap token starts from.
	if err := token.APReq.DecryptAuthenticator(g.sessionKey); err != nil {
		return "", nil, fmt.Errorf("auth: GSSAPI: read back AP-REQ: %w", err)
	}
	g.authenticator = token.APReq.Authenticator
	ir, err := token.Marshal()
	if err != nil {
		return "", nil, fmt.Errorf("auth: GSSAPI: %w", err)
	}
	return GSSAPI, ir, nil
}

func (g *gssapiClient) Next(challenge []byte) ([]byte, error) {
	g.step++
	switch g.step {
	case 1:
		if err := g.checkAPRep(challenge); err != nil {
			return nil, err
		}
		// The context is established; RFC 4752 has the client answer with an empty
		// response, to which the server sends its security-layer offer.
		return []byte{}, nil
	case 2:
		return g.chooseSecurityLayer(challenge)
	}
	return nil, errors.New("auth: GSSAPI: unexpected challenge after the security layer was chosen")
}

// checkAPRep verifies the server's AP-REP: it decrypts with the ticket's session key
// only for the service holding the key (mutual authentication), and echoes our
// authenticator's time. It may carry the acceptor's subkey, which the wrap tokens
// that follow use.
func (g *gssapiClient) checkAPRep(challenge []byte) error {
	var token spnego.KRB5Token
	if err := token.Unmarshal(challenge); err != nil {
		return fmt.Errorf("auth: GSSAPI: server's reply is not a Kerberos token: %w", err)
	}
	if token.IsKRBError() {
		return fmt.Errorf("auth: GSSAPI: the server refused the ticket: %w", token.KRBError)
	}
	if !token.IsAPRep() {
		return errors.New("auth: GSSAPI: the server's reply is not an AP-REP: mutual authentication failed")
	}
	plain, err := crypto.DecryptEncPart(token.APRep.EncPart, g.sessionKey, keyusage.AP_REP_ENCPART)
	if err != nil {
		return fmt.Errorf("auth: GSSAPI: the server's AP-REP does not decrypt with the session key (not the real service?): %w", err)
	}
	var part messages.EncAPRepPart
	if err := part.Unmarshal(plain); err != nil {
		return fmt.Errorf("auth: GSSAPI: %w", err)
	}
	if part.CTime.Unix() != g.authenticator.CTime.Unix() || part.Cusec != g.authenticator.Cusec {
		return errors.New("auth: GSSAPI: the server's AP-REP does not echo our authenticator: mutual authentication failed")
	}
	if len(part.Subkey.KeyValue) > 0 {
		key := part.Subkey
		g.acceptorKey = &key
	}
	return nil
}

// chooseSecurityLayer reads the server's wrap token (its supported layers and
// buffer size) and answers with a wrap token choosing no layer, for authzid.
func (g *gssapiClient) chooseSecurityLayer(challenge []byte) ([]byte, error) {
	var offer gssapi.WrapToken
	if err := offer.Unmarshal(challenge, true); err != nil {
		return nil, fmt.Errorf("auth: GSSAPI: security-layer offer: %w", err)
	}
	if offer.Flags&wrapSealed != 0 {
		return nil, errors.New("auth: GSSAPI: the server sealed its security-layer offer, which this client does not unseal")
	}
	key := g.wrapKey(offer.Flags&wrapAcceptorSubkey != 0)
	if ok, err := offer.Verify(key, keyusage.GSSAPI_ACCEPTOR_SEAL); !ok {
		return nil, fmt.Errorf("auth: GSSAPI: security-layer offer fails its checksum: %w", err)
	}
	if len(offer.Payload) != 4 {
		return nil, fmt.Errorf("auth: GSSAPI: security-layer offer of %d bytes, not 4", len(offer.Payload))
	}
	if offer.Payload[0]&securityLayerNone == 0 {
		return nil, errors.New("auth: GSSAPI: the server insists on a SASL security layer, which this client does not provide")
	}
	payload := append([]byte{securityLayerNone, 0, 0, 0}, g.authzid...)
	answer := gssapi.WrapToken{
		SndSeqNum: uint64(g.authenticator.SeqNumber),
		Payload:   payload,
	}
	if g.acceptorKey != nil {
		answer.Flags = wrapAcceptorSubkey
	}
	et, err := crypto.GetEtype(key.KeyType)
	if err != nil {
		return nil, fmt.Errorf("auth: GSSAPI: %w", err)
	}
	answer.EC = uint16(et.GetHMACBitLength() / 8)
	if err := answer.SetCheckSum(key, keyusage.GSSAPI_INITIATOR_SEAL); err != nil {
		return nil, fmt.Errorf("auth: GSSAPI: %w", err)
	}
	return answer.Marshal()
}

// wrapKey is the key of the per-message tokens (RFC 4121 section 2): the
// acceptor's subkey when the server sent one, else our subkey, else the session key.
func (g *gssapiClient) wrapKey(acceptorSubkey bool) types.EncryptionKey {
	if acceptorSubkey && g.acceptorKey != nil {
		return *g.acceptorKey
	}
	if len(g.authenticator.SubKey.KeyValue) > 0 {
		return g.authenticator.SubKey
	}
	return g.sessionKey
}

var _ sasl.Client = (*gssapiClient)(nil)
