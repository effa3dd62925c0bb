package ewstest

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// AutodiscoverConfig is how a domain's Autodiscover answers. The zero value
// answers nothing (404 everywhere).
type AutodiscoverConfig struct {
	// JSON answers the JSON v2 endpoint with EWSURL; POX the POX endpoint
	// (with credentials a user of the server has, taken as EWS takes them).
	JSON, POX bool
	// EWSURL is the URL answered ("": the server's EWSURL).
	EWSURL string
	// RedirectAddr makes POX answer Action redirectAddr with that address.
	RedirectAddr string
	// RedirectURL makes POX answer Action redirectUrl with that URL.
	RedirectURL string
	// HTTPRedirect makes every endpoint of the domain answer 302 to that URL.
	HTTPRedirect string
}

// SetAutodiscover sets how Autodiscover answers for a domain, at both
// autodiscover.<domain> and <domain>.
func (s *Server) SetAutodiscover(domain string, cfg AutodiscoverConfig) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.autodiscover[strings.ToLower(domain)] = cfg
}

// configFor returns the config of the domain a request's host belongs to.
func (s *Server) configFor(r *http.Request) (AutodiscoverConfig, bool) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(host)
	_, hasCreds := r.Header["Authorization"]
	s.mu.Lock()
	defer s.mu.Unlock()
	s.adRequests = append(s.adRequests, AutodiscoverRequest{Host: host, Method: r.Method, Path: r.URL.Path, WithCredentials: hasCreds})
	cfg, ok := s.autodiscover[strings.TrimPrefix(host, "autodiscover.")]
	if !ok {
		cfg, ok = s.autodiscover[host]
	}
	if cfg.EWSURL == "" {
		cfg.EWSURL = s.EWSURL()
	}
	return cfg, ok
}

func (s *Server) serveJSON(w http.ResponseWriter, r *http.Request) {
	cfg, ok := s.configFor(r)
	if ok && cfg.HTTPRedirect != "" {
		http.Redirect(w, r, cfg.HTTPRedirect, http.StatusFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if !ok || !cfg.JSON || !strings.EqualFold(r.URL.Query().Get("Protocol"), "EWS") {
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(map[string]string{"ErrorCode": "ProtocolNotSupported", "ErrorMessage": "The given protocol value is invalid."})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]string{"Protocol": "EWS", "Url": cfg.EWSURL})
}

func (s *Server) servePOX(w http.ResponseWriter, r *http.Request) {
	cfg, ok := s.configFor(r)
	if ok && cfg.HTTPRedirect != "" {
		http.Redirect(w, r, cfg.HTTPRedirect, http.StatusFound)
		return
	}
	if !ok || !cfg.POX && cfg.RedirectAddr == "" && cfg.RedirectURL == "" {
		http.NotFound(w, r)
		return
	}
	if _, _, ok := s.authenticate(w, r); !ok {
		return
	}
	var req struct {
		Address string `xml:"Request>EMailAddress"`
	}
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if xml.Unmarshal(raw, &req) != nil || req.Address == "" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	var account string
	switch {
	case cfg.RedirectAddr != "":
		account = `<AccountType>email</AccountType><Action>redirectAddr</Action><RedirectAddr>` + esc(cfg.RedirectAddr) + `</RedirectAddr>`
	case cfg.RedirectURL != "":
		account = `<AccountType>email</AccountType><Action>redirectUrl</Action><RedirectUrl>` + esc(cfg.RedirectURL) + `</RedirectUrl>`
	default:
		account = fmt.Sprintf(`<AccountType>email</AccountType><Action>settings</Action>`+
			`<Protocol><Type>EXCH</Type><Server>mail.internal</Server><ASUrl>%[1]s</ASUrl><EwsUrl>%[1]s</EwsUrl></Protocol>`+
			`<Protocol><Type>EXPR</Type><Server>mail</Server><EwsUrl>%[1]s</EwsUrl></Protocol>`, esc(cfg.EWSURL))
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	_, _ = io.WriteString(w, `<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">`+
		`<Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a">`+
		`<User><DisplayName>`+esc(req.Address)+`</DisplayName><AutoDiscoverSMTPAddress>`+esc(req.Address)+`</AutoDiscoverSMTPAddress></User>`+
		`<Account>`+account+`</Account></Response></Autodiscover>`)
}
