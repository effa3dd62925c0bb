package ewstest

import (
	"net/http"
	"strings"

	"github.com/jcmturner/goidentity/v6"
	"github.com/jcmturner/gokrb5/v8/service"
	"github.com/jcmturner/gokrb5/v8/spnego"
)

// authenticate returns the user a request logs in as and how ("Basic" or
// "Negotiate"), or answers 401 itself, offering the schemes the server takes, and
// returns ok false.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (login, scheme string, ok bool) {
	header := r.Header.Get("Authorization")
	switch {
	case s.keytab != nil && hasScheme(header, "Negotiate"):
		return s.negotiate(w, r)
	case s.basic && hasScheme(header, "Basic"):
		login, password, _ := r.BasicAuth()
		login = strings.ToLower(login)
		s.mu.Lock()
		u, known := s.users[login]
		s.mu.Unlock()
		if known && u.password == password && password != "" {
			return login, "Basic", true
		}
	}
	s.unauthorized(w)
	return "", "", false
}

// negotiate validates a SPNEGO token with gokrb5's service side and the server's
// keytab: only a ticket the KDC issued for one of its HTTP/ principals decrypts.
// The principal name@REALM is the user whose login is name, or name@realm.
func (s *Server) negotiate(w http.ResponseWriter, r *http.Request) (login, scheme string, ok bool) {
	var id goidentity.Identity
	accepted := http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { id = goidentity.FromHTTPRequestContext(r) })
	// A refused token is answered here, with the SPNEGO reject token.
	spnego.SPNEGOKRB5Authenticate(accepted, s.keytab, service.DecodePAC(false)).ServeHTTP(w, r)
	if id == nil {
		return "", "", false
	}
	name := strings.ToLower(id.UserName())
	s.mu.Lock()
	_, short := s.users[name]
	_, long := s.users[name+"@"+strings.ToLower(id.Domain())]
	s.mu.Unlock()
	switch {
	case short:
		return name, "Negotiate", true
	case long:
		return name + "@" + strings.ToLower(id.Domain()), "Negotiate", true
	}
	// A valid ticket of a principal without an account here: refused like a
	// wrong password.
	w.Header().Del("WWW-Authenticate")
	s.unauthorized(w)
	return "", "", false
}

// unauthorized answers 401 with the schemes the server takes.
func (s *Server) unauthorized(w http.ResponseWriter) {
	if s.keytab != nil {
		w.Header().Add("WWW-Authenticate", "Negotiate")
	}
	if s.basic {
		w.Header().Add("WWW-Authenticate", `Basic realm="ewstest"`)
	}
	http.Error(w, "401 Unauthorized", http.StatusUnauthorized)
}

func hasScheme(header, scheme string) bool {
	return len(header) > len(scheme) && strings.EqualFold(header[:len(scheme)], scheme) && header[len(scheme)] == ' '
}
