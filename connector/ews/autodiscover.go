package ews

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector"
)

// MaxAutodiscoverHops bounds the redirects (HTTP redirects, POX RedirectUrl and
// RedirectAddr answers) one Discover follows.
const MaxAutodiscoverHops = 10

// The POX request and response schemas of Outlook's Autodiscover.
const (
	poxRequestSchema  = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
	poxResponseSchema = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
)

// Discover implements serversync.Discoverer with Exchange Autodiscover: it
// returns the EWS URL of target.EmailAddress. In order, for the address's
// domain D:
//
//  1. the JSON v2 endpoint, anonymous: GET
//     https://autodiscover.D/autodiscover/autodiscover.json/v1.0/{address}?Protocol=EWS,
//     then the same at https://D/;
//  2. POX: POST the Outlook request schema to
//     https://autodiscover.D/autodiscover/autodiscover.xml, then https://D/…, with
//     the target's credentials, reading the EwsUrl of the EXPR (outside)
//     protocol, else of EXCH; a RedirectUrl is posted to in turn, a RedirectAddr
//     starts over for that address.
//
// The rules that keep credentials safe: everything is HTTPS (a redirect to
// http is refused, and so is an http EWS URL); credentials are only sent to D
// and its subdomains (D being the domain of the address asked about: the
// mailbox's, or one a RedirectAddr named) and to Options.AutodiscoverHosts; an
// HTTP redirect or RedirectUrl to any other host is refused; at most
// MaxAutodiscoverHops redirects are followed in all. The EWS URL found may be on
// any host: it comes from the domain's own Autodiscover over verified TLS.
func (c *Connector) Discover(ctx context.Context, target *serversync.Target) (string, error) {
	if target == nil || !strings.Contains(target.EmailAddress, "@") {
		return "", connector.Error("autodiscover", serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeBadTarget,
			errors.New("ews: Autodiscover needs the mailbox's email address"))
	}
	base, err := c.httpClient(target.Endpoint)
	if err != nil {
		return "", err
	}
	rt := base.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	authed, err := c.opts.Authenticator(rt, target.Credentials, target.Endpoint)
	if err != nil {
		return "", err
	}
	noRedirects := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	anon, withCreds := *base, *base
	anon.CheckRedirect, withCreds.CheckRedirect = noRedirects, noRedirects
	withCreds.Transport = authed
	d := &discovery{c: c, anon: &anon, creds: &withCreds, timeout: target.Endpoint.Timeout}
	found, err := d.address(ctx, target.EmailAddress)
	if err != nil {
		return "", err
	}
	c.log.Info("ews: autodiscovered", "mailbox", target.MailboxID, "url", found)
	return found, nil
}

type discovery struct {
	c           *Connector
	anon, creds *http.Client
	timeout     time.Duration
	hops        int
	tried       []string // what was tried and why it failed, for the error
	authErr     error
}

// errNoAnswer is an endpoint that had nothing for us: try the next one.
var errNoAnswer = errors.New("no answer")

func (d *discovery) address(ctx context.Context, address string) (string, error) {
	domain := strings.ToLower(address[strings.LastIndexByte(address, '@')+1:])
	bases := []string{"https://autodiscover." + domain, "https://" + domain}
	for _, b := range bases {
		found, err := d.json(ctx, b+"/autodiscover/autodiscover.json/v1.0/"+url.PathEscape(address)+"?Protocol=EWS", domain)
		if err != nil {
			if fatal(err) {
				return "", err
			}
			continue
		}
		return found, nil
	}
	for _, b := range bases {
		found, redirectAddr, err := d.pox(ctx, b+"/autodiscover/autodiscover.xml", address, domain)
		if err != nil {
			if fatal(err) {
				return "", err
			}
			continue
		}
		if redirectAddr != "" {
			if err := d.hop("RedirectAddr to " + redirectAddr); err != nil {
				return "", err
			}
			return d.address(ctx, redirectAddr)
		}
		return found, nil
	}
	if d.authErr != nil {
		return "", d.authErr
	}
	return "", connector.Error("autodiscover", serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeBadTarget,
		fmt.Errorf("ews: Autodiscover found no EWS URL for %s (tried: %s): check the Autodiscover DNS records, or set the profile's server and turn AutoDiscover off",
			address, strings.Join(d.tried, "; ")))
}

// fatal reports whether a failure ends the discovery (the hop limit, a
// redirect refused for safety) rather than passing to the next endpoint.
func fatal(err error) bool {
	var ce *serversync.ConnectorError
	return errors.As(err, &ce) && (ce.Code == serversync.CodeProtocolError || ce.Code == serversync.CodePlaintextAuthRefused)
}

func (d *discovery) hop(what string) error {
	d.hops++
	if d.hops > MaxAutodiscoverHops {
		return connector.Error("autodiscover", serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeProtocolError,
			fmt.Errorf("ews: Autodiscover redirected more than %d times (last: %s): a redirect loop", MaxAutodiscoverHops, what))
	}
	return nil
}

// allowed reports whether credentials may go to host for domain.
func (d *discovery) allowed(host, domain string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == domain || strings.HasSuffix(host, "."+domain) {
		return true
	}
	for _, h := range d.c.opts.AutodiscoverHosts {
		h = strings.ToLower(h)
		if host == h || (strings.HasPrefix(h, ".") && strings.HasSuffix(host, h)) {
			return true
		}
	}
	return false
}

// do sends a request, following HTTP redirects under the rules, and returns
// the final reply with at most 1 MiB of its body.
func (d *discovery) do(ctx context.Context, method, raw string, body []byte, withCreds bool, domain string) (*http.Response, []byte, error) {
	for {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return nil, nil, fmt.Errorf("%s: not a URL", raw)
		}
		if u.Scheme != "https" {
			return nil, nil, connector.Error("autodiscover", serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodePlaintextAuthRefused,
				fmt.Errorf("ews: Autodiscover was redirected to %s, which is not https: refused", u.Redacted()))
		}
		if withCreds && !d.allowed(u.Hostname(), domain) {
			return nil, nil, connector.Error("autodiscover", serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeProtocolError,
				fmt.Errorf("ews: Autodiscover was sent to %s, outside %s: the credentials are not sent there (add the host to the connector's AutodiscoverHosts if it is yours)", u.Host, domain))
		}
		reqCtx, cancel := ctx, context.CancelFunc(func() {})
		if d.timeout > 0 {
			reqCtx, cancel = context.WithTimeout(ctx, d.timeout)
		}
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(reqCtx, method, u.String(), rd)
		if err != nil {
			cancel()
			return nil, nil, err
		}
		if body != nil {
			req.Header.Set("Content-Type", "text/xml; charset=utf-8")
		}
		client := d.anon
		if withCreds {
			client = d.creds
		}
		resp, err := client.Do(req)
		if err != nil {
			cancel()
			return nil, nil, err
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		cancel()
		if err != nil {
			return nil, nil, err
		}
		if loc := resp.Header.Get("Location"); resp.StatusCode >= 300 && resp.StatusCode < 400 && loc != "" {
			next, err := u.Parse(loc)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: bad redirect", u.Host)
			}
			if err := d.hop("HTTP redirect to " + next.Redacted()); err != nil {
				return nil, nil, err
			}
			if resp.StatusCode == http.StatusMovedPermanently || resp.StatusCode == http.StatusFound || resp.StatusCode == http.StatusSeeOther {
				if method == http.MethodPost && resp.StatusCode == http.StatusSeeOther {
					method, body = http.MethodGet, nil
				}
			}
			raw = next.String()
			continue
		}
		return resp, data, nil
	}
}

// json asks the JSON v2 endpoint.
func (d *discovery) json(ctx context.Context, u, domain string) (string, error) {
	resp, data, err := d.do(ctx, http.MethodGet, u, nil, false, domain)
	if err != nil {
		d.tried = append(d.tried, fmt.Sprintf("%s: %v", hostOfURL(u), err))
		return "", err
	}
	var answer struct {
		Protocol     string
		URL          string `json:"Url"`
		ErrorCode    string
		ErrorMessage string
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(data, &answer) != nil || answer.URL == "" {
		d.tried = append(d.tried, fmt.Sprintf("%s JSON: HTTP %d %s", hostOfURL(u), resp.StatusCode, answer.ErrorCode))
		return "", errNoAnswer
	}
	return d.ewsURL(answer.URL)
}

// ewsURL checks a discovered URL.
func (d *discovery) ewsURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" || u.Scheme != "https" {
		return "", connector.Error("autodiscover", serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodePlaintextAuthRefused,
			fmt.Errorf("ews: Autodiscover answered the EWS URL %q, which is not https: refused", raw))
	}
	return u.String(), nil
}

// poxAnswer is the part of a POX response read here.
type poxAnswer struct {
	Response struct {
		Error *struct {
			ErrorCode string `xml:"ErrorCode"`
			Message   string `xml:"Message"`
		} `xml:"Error"`
		Account struct {
			Action       string `xml:"Action"`
			RedirectAddr string `xml:"RedirectAddr"`
			RedirectURL  string `xml:"RedirectUrl"`
			Protocol     []struct {
				Type   string `xml:"Type"`
				EwsURL string `xml:"EwsUrl"`
			} `xml:"Protocol"`
		} `xml:"Account"`
	} `xml:"Response"`
}

// pox posts the Outlook request; it returns the EWS URL, or an address to
// start over with.
func (d *discovery) pox(ctx context.Context, u, address, domain string) (found, redirectAddr string, err error) {
	body := []byte(`<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="` + poxRequestSchema + `"><Request>` +
		`<EMailAddress>` + esc(address) + `</EMailAddress><AcceptableResponseSchema>` + poxResponseSchema +
		`</AcceptableResponseSchema></Request></Autodiscover>`)
	for {
		resp, data, err := d.do(ctx, http.MethodPost, u, body, true, domain)
		if err != nil {
			d.tried = append(d.tried, fmt.Sprintf("%s POX: %v", hostOfURL(u), err))
			return "", "", err
		}
		if resp.StatusCode == http.StatusUnauthorized {
			d.authErr = connector.Error("autodiscover", serversync.ErrorAuth, serversync.ScopeMailbox, serversync.CodeAuthFailed,
				fmt.Errorf("ews: Autodiscover at %s refused the user name and password", hostOfURL(u)))
			d.tried = append(d.tried, hostOfURL(u)+" POX: HTTP 401")
			return "", "", errNoAnswer
		}
		var answer poxAnswer
		if resp.StatusCode != http.StatusOK || xml.Unmarshal(data, &answer) != nil {
			d.tried = append(d.tried, fmt.Sprintf("%s POX: HTTP %d", hostOfURL(u), resp.StatusCode))
			return "", "", errNoAnswer
		}
		acct := answer.Response.Account
		switch strings.ToLower(strings.TrimSpace(acct.Action)) {
		case "redirectaddr":
			addr := strings.TrimSpace(acct.RedirectAddr)
			if !strings.Contains(addr, "@") {
				return "", "", connector.Error("autodiscover", serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeProtocolError,
					fmt.Errorf("ews: Autodiscover redirected to the address %q", addr))
			}
			return "", addr, nil
		case "redirecturl":
			if err := d.hop("RedirectUrl to " + acct.RedirectURL); err != nil {
				return "", "", err
			}
			u = strings.TrimSpace(acct.RedirectURL)
			continue
		}
		if e := answer.Response.Error; e != nil {
			d.tried = append(d.tried, fmt.Sprintf("%s POX: error %s %q", hostOfURL(u), e.ErrorCode, e.Message))
			return "", "", errNoAnswer
		}
		for _, want := range []string{"EXPR", "EXCH"} {
			for _, p := range acct.Protocol {
				if strings.EqualFold(strings.TrimSpace(p.Type), want) && strings.TrimSpace(p.EwsURL) != "" {
					found, err := d.ewsURL(p.EwsURL)
					return found, "", err
				}
			}
		}
		d.tried = append(d.tried, hostOfURL(u)+" POX: no EwsUrl")
		return "", "", errNoAnswer
	}
}

func hostOfURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		return u.Host
	}
	return "?"
}
