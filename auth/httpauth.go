package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	ntlmssp "github.com/Azure/go-ntlmssp"
	"github.com/jcmturner/gokrb5/v8/spnego"
)

// HTTPOptions adjust HTTPTransportWith. A nil *HTTPOptions is the zero value.
type HTTPOptions struct {
	// AllowBasicWithoutTLS lets Basic authentication send the password over plain
	// http:// (OrgSettings.AllowCredentialsOverNonSecureChannels). NTLM and
	// Negotiate never send it, so they need no such permission.
	AllowBasicWithoutTLS bool
	// TicketLifetime bounds how long a Kerberos service ticket is reused before the
	// identity logs in to the KDC again; 0 means TicketLifetimeDefault.
	TicketLifetime time.Duration
}

// TicketLifetimeDefault is how long an HTTP Negotiate transport reuses a service
// ticket: well inside any ticket's life, so a ticket never expires in use, and long
// enough that a busy mailbox asks the KDC a few times an hour, not per request.
const TicketLifetimeDefault = 5 * time.Minute

// ErrBasicWithoutTLS is returned instead of sending a password with HTTP Basic over
// a connection without TLS, unless HTTPOptions.AllowBasicWithoutTLS.
var ErrBasicWithoutTLS = errors.New("auth: refusing HTTP Basic authentication without TLS (the password would travel in the clear)")

// HTTPTransport is HTTPTransportWith(creds, base, nil).
func HTTPTransport(creds Credentials, base http.RoundTripper) http.RoundTripper {
	return HTTPTransportWith(creds, base, nil)
}

// HTTPTransportWith returns a RoundTripper that authenticates each request as
// creds say, over base (nil: http.DefaultTransport), for HTTP APIs such as EWS:
//
//   - Protocol Negotiate: SPNEGO with Kerberos (RFC 4559) for HTTP/<host>, from the
//     user's password or, for KindIntegrated, the process's keytab or ticket cache;
//   - Protocol NTLM: NTLMv2 (the password never leaves the process);
//   - Protocol Basic: the password itself, over TLS only unless allowed;
//   - Protocol Auto: the first request goes out without credentials, and the
//     server's WWW-Authenticate decides: Negotiate when offered and a Kerberos
//     identity is there, else NTLM, else Basic. The choice is kept for later requests.
//   - OAuth and app-only credentials: a Bearer token from TokenSource.
//
// A request body is sent again in a handshake, so it must be rewindable (the
// request's GetBody, as http.NewRequest sets for byte readers and strings) or it is
// read into memory. Errors from the KDC are *KerberosError. The transport is safe for
// concurrent use.
func HTTPTransportWith(creds Credentials, base http.RoundTripper, opts *HTTPOptions) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	var o HTTPOptions
	if opts != nil {
		o = *opts
	}
	if o.TicketLifetime <= 0 {
		o.TicketLifetime = TicketLifetimeDefault
	}
	t := &httpAuth{creds: creds, base: base, opts: o, tickets: map[string]cachedTicket{}}
	switch {
	case creds.Kind == KindAnonymous || creds.Kind == "":
		return base
	case creds.Kind == KindOAuth || creds.Kind == KindAppOnly:
		t.fixed = schemeBearer
	case creds.Kind == KindIntegrated || creds.Protocol == ProtocolNegotiate:
		t.fixed = schemeNegotiate
	case creds.Protocol == ProtocolNTLM:
		t.fixed = schemeNTLM
	case creds.Protocol == ProtocolBasic:
		t.fixed = schemeBasic
	}
	return t
}

type scheme int

const (
	schemeUnknown scheme = iota
	schemeNegotiate
	schemeNTLM
	schemeBasic
	schemeBearer
)

type httpAuth struct {
	creds Credentials
	base  http.RoundTripper
	opts  HTTPOptions
	fixed scheme // the profile's choice; schemeUnknown for Auto

	mu      sync.Mutex
	chosen  scheme                  // Auto's choice once the server has said
	tickets map[string]cachedTicket // by SPN
}

type cachedTicket struct {
	ticket
	expires time.Time
}

func (t *httpAuth) RoundTrip(req *http.Request) (*http.Response, error) {
	req, err := rewindable(req)
	if err != nil {
		return nil, err
	}
	if req.Body != nil {
		// Every attempt sends a fresh copy from GetBody; the original is closed, as
		// a RoundTripper must.
		defer req.Body.Close()
	}
	s := t.fixed
	if s == schemeUnknown {
		t.mu.Lock()
		s = t.chosen
		t.mu.Unlock()
	}
	if s != schemeUnknown {
		return t.send(req, s)
	}
	// Auto, first request: let the server say what it takes.
	resp, err := t.base.RoundTrip(cloneRequest(req))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	offered := offeredSchemes(resp.Header)
	s = t.pick(offered)
	if s == schemeUnknown {
		return resp, nil // nothing we can answer: the caller sees the 401
	}
	drain(resp)
	t.mu.Lock()
	t.chosen = s
	t.mu.Unlock()
	return t.send(req, s)
}

// pick is Auto's choice among the schemes a server offers.
func (t *httpAuth) pick(offered map[string]bool) scheme {
	password := t.creds.Kind == KindPassword || t.creds.Kind == KindDelegation || t.creds.Kind == KindImpersonation
	switch {
	case offered["negotiate"] && t.creds.Kerberos != nil:
		return schemeNegotiate
	case password && (offered["ntlm"] || offered["negotiate"]):
		// go-ntlmssp answers a Negotiate offer with NTLM inside it, as Windows
		// clients do without a ticket.
		return schemeNTLM
	case password && offered["basic"]:
		return schemeBasic
	}
	return schemeUnknown
}

func (t *httpAuth) send(req *http.Request, s scheme) (*http.Response, error) {
	switch s {
	case schemeNegotiate:
		return t.negotiate(req)
	case schemeNTLM:
		return t.ntlm(req)
	case schemeBasic:
		if req.URL.Scheme != "https" && !t.opts.AllowBasicWithoutTLS {
			return nil, ErrBasicWithoutTLS
		}
		r := cloneRequest(req)
		r.SetBasicAuth(t.creds.LoginName(), t.creds.Password.Reveal())
		return t.base.RoundTrip(r)
	case schemeBearer:
		if t.creds.TokenSource == nil {
			return nil, errors.New("auth: OAuth credentials without a token source")
		}
		token, err := contextTokenSource{req.Context(), t.creds.TokenSource}.Token()
		if err != nil {
			return nil, fmt.Errorf("auth: get OAuth token: %w", err)
		}
		r := cloneRequest(req)
		r.Header.Set("Authorization", "Bearer "+token.AccessToken)
		return t.base.RoundTrip(r)
	}
	return nil, fmt.Errorf("%w over HTTP for %s credentials", ErrMechanismUnavailable, t.creds.Kind)
}

// negotiate sends req with a SPNEGO token for HTTP/<host>. A 401 with a reused
// ticket (the service's key changed, or the ticket expired early) is answered once
// more with a fresh login.
func (t *httpAuth) negotiate(req *http.Request) (*http.Response, error) {
	spn := "HTTP/" + req.URL.Hostname()
	for attempt := 0; ; attempt++ {
		tk, cached, err := t.ticketFor(req.Context(), spn, attempt > 0)
		if err != nil {
			return nil, err
		}
		init, err := spnego.NewNegTokenInitKRB5(tk.client, tk.ticket, tk.sessionKey)
		if err != nil {
			return nil, fmt.Errorf("auth: Negotiate: %w", err)
		}
		token, err := (&spnego.SPNEGOToken{Init: true, NegTokenInit: init}).Marshal()
		if err != nil {
			return nil, fmt.Errorf("auth: Negotiate: %w", err)
		}
		r := cloneRequest(req)
		r.Header.Set("Authorization", "Negotiate "+base64.StdEncoding.EncodeToString(token))
		resp, err := t.base.RoundTrip(r)
		if err != nil || resp.StatusCode != http.StatusUnauthorized || !cached || attempt > 0 {
			return resp, err
		}
		drain(resp)
		t.mu.Lock()
		delete(t.tickets, spn)
		t.mu.Unlock()
	}
}

// ticketFor returns a service ticket for spn, reusing one younger than the ticket
// lifetime unless fresh; cached says whether it was reused.
func (t *httpAuth) ticketFor(ctx context.Context, spn string, fresh bool) (ticket, bool, error) {
	t.mu.Lock()
	c, ok := t.tickets[spn]
	t.mu.Unlock()
	if ok && !fresh && time.Now().Before(c.expires) {
		return c.ticket, true, nil
	}
	cl, err := t.creds.kerberosClient(ctx)
	if err != nil {
		return ticket{}, false, err
	}
	tk, err := serviceTicket(cl, spn)
	if err != nil {
		return ticket{}, false, err
	}
	t.mu.Lock()
	t.tickets[spn] = cachedTicket{ticket: tk, expires: time.Now().Add(t.opts.TicketLifetime)}
	t.mu.Unlock()
	return tk, false, nil
}

// ntlm runs the NTLM handshake through go-ntlmssp's Negotiator, which takes the
// credentials from a Basic header on the request and never sends that header
// (AllowBasicAuth is off): they leave the process only as an NTLMv2 response.
func (t *httpAuth) ntlm(req *http.Request) (*http.Response, error) {
	if !t.creds.Password.IsSet() {
		return nil, fmt.Errorf("%w: NTLM needs a password", ErrMechanismUnavailable)
	}
	r := cloneRequest(req)
	r.SetBasicAuth(t.creds.LoginName(), t.creds.Password.Reveal())
	return ntlmssp.Negotiator{RoundTripper: neverBasic{t.base}}.RoundTrip(r)
}

// neverBasic refuses any request carrying a Basic header: a second guard that the
// NTLM path never hands the password to the network.
type neverBasic struct{ base http.RoundTripper }

func (n neverBasic) RoundTrip(req *http.Request) (*http.Response, error) {
	if _, _, ok := req.BasicAuth(); ok {
		return nil, errors.New("auth: NTLM: refusing to send the password in a Basic header")
	}
	return n.base.RoundTrip(req)
}

// offeredSchemes reads the schemes of a response's WWW-Authenticate headers, in
// lower case.
func offeredSchemes(h http.Header) map[string]bool {
	offered := map[string]bool{}
	for _, v := range h.Values("WWW-Authenticate") {
		for _, challenge := range strings.Split(v, ",") {
			fields := strings.Fields(challenge)
			if len(fields) > 0 && !strings.Contains(fields[0], "=") {
				offered[strings.ToLower(fields[0])] = true
			}
		}
	}
	return offered
}

// rewindable makes sure req's body can be sent more than once.
func rewindable(req *http.Request) (*http.Request, error) {
	if req.Body == nil || req.Body == http.NoBody || req.GetBody != nil {
		return req, nil
	}
	body, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, err
	}
	req = req.Clone(req.Context())
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return req, nil
}

// cloneRequest is a copy of req with a fresh body, for one more attempt.
func cloneRequest(req *http.Request) *http.Request {
	r := req.Clone(req.Context())
	if req.GetBody != nil {
		if body, err := req.GetBody(); err == nil {
			r.Body = body
		}
	}
	return r
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}
