package dav_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/dav"
	"github.com/serversync/serversync/internal/testcert"
)

func tlsServer(t *testing.T, h http.HandlerFunc) (url, caPEM string) {
	t.Helper()
	cert, pem := testcert.Must()
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are the point
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL + "/", pem
}

func target(url, caPEM string) *serversync.Target {
	return &serversync.Target{MailboxID: "m1",
		Endpoint:    serversync.Endpoint{URL: url, RootCAsPEM: caPEM, TLS: serversync.TLSImplicit, Timeout: 5 * time.Second},
		Credentials: auth.Credentials{Kind: auth.KindPassword, Username: "u", Password: auth.NewSecret("very-secret-pw")}}
}

func code(err error) string {
	var ce *serversync.ConnectorError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return ""
}

func TestOpenClassifiesHTTPFailures(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tc := range []struct {
		status int
		code   string
		kind   serversync.ErrorKind
	}{
		{http.StatusUnauthorized, serversync.CodeAuthFailed, serversync.ErrorAuth},
		{http.StatusForbidden, serversync.CodeNoPermission, serversync.ErrorPermanent},
		{http.StatusNotFound, serversync.CodeFolderNotFound, serversync.ErrorPermanent},
		{http.StatusServiceUnavailable, serversync.CodeServerUnavailable, serversync.ErrorTransient},
		{http.StatusTooManyRequests, serversync.CodeThrottled, serversync.ErrorTransient},
	} {
		url, pem := tlsServer(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", tc.status) })
		_, err := (&dav.Connector{}).OpenACT(ctx, target(url, pem))
		if code(err) != tc.code || serversync.ClassifyError(err).Kind != tc.kind {
			t.Errorf("HTTP %d: %v, want %s (%s)", tc.status, err, tc.code, tc.kind)
		}
		if err != nil && strings.Contains(err.Error(), "very-secret-pw") {
			t.Errorf("the password is in the error: %v", err)
		}
	}
}

func TestOpenVerifiesTLSAndRefusesPlaintext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	url, _ := tlsServer(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusUnauthorized) })
	if _, err := (&dav.Connector{}).OpenACT(ctx, target(url, "")); code(err) != serversync.CodeTLSVerifyFailed {
		t.Errorf("untrusted certificate: %v, want %s", err, serversync.CodeTLSVerifyFailed)
	}
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.Error("credentials sent in clear") }))
	defer plain.Close()
	tg := target(plain.URL+"/", "")
	tg.Endpoint.TLS = serversync.TLSNone
	if _, err := (&dav.Connector{}).OpenACT(ctx, tg); code(err) != serversync.CodePlaintextAuthRefused {
		t.Errorf("http without AllowPlaintextAuth: %v", err)
	}
	tg = target(url, "")
	tg.Credentials = auth.Credentials{Kind: auth.KindAppOnly}
	if _, err := (&dav.Connector{}).OpenACT(ctx, tg); !errors.Is(err, serversync.ErrUnsupportedCredentials) {
		t.Errorf("app-only credentials: %v", err)
	}
	for _, bad := range []string{"", "ftp://x/", "https://user:pw@host/", "://"} {
		if _, err := (&dav.Connector{}).OpenACT(ctx, target(bad, "")); code(err) != serversync.CodeBadTarget {
			t.Errorf("URL %q: %v", bad, err)
		}
	}
}

func TestReplyBodiesAreBounded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	url, pem := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusMultiStatus)
		_, _ = w.Write([]byte(`<?xml version="1.0"?><multistatus xmlns="DAV:"><response><href>/` + strings.Repeat("a", 1<<20) + `</href></response></multistatus>`))
	})
	_, err := (&dav.Connector{MaxBodyBytes: 64 << 10}).OpenACT(ctx, target(url, pem))
	if code(err) != serversync.CodeReplyTooLong {
		t.Fatalf("a 1 MiB reply with a 64 KiB bound: %v, want %s", err, serversync.CodeReplyTooLong)
	}
}

func TestRealServerRefusesWrongPassword(t *testing.T) {
	tg := server(t, "RADICALE")
	tg.Credentials.Password = auth.NewSecret("wrong")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := (&dav.Connector{}).OpenACT(ctx, tg); code(err) != serversync.CodeAuthFailed {
		t.Fatalf("wrong password: %v, want %s", err, serversync.CodeAuthFailed)
	}
}

// A sync token the server no longer knows (RFC 6578 valid-sync-token) starts over
// with a reset, listing every item again.
func TestStaleSyncTokenResets(t *testing.T) {
	for _, name := range []string{"RADICALE", "XANDIKOS"} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, err := (&dav.Connector{}).OpenACT(ctx, server(t, name))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			c := &serversync.Contact{DisplayName: "Stale token"}
			if err := s.Put(ctx, c, ""); err != nil {
				t.Fatal(err)
			}
			first, err := s.Changes(ctx, serversync.KindContact, nil)
			if err != nil {
				t.Fatal(err)
			}
			var cur map[string]any
			if err := json.Unmarshal(first.Cursor, &cur); err != nil || cur["t"] == nil {
				t.Fatalf("cursor %s holds no sync token", first.Cursor)
			}
			cur["t"] = cur["t"].(string) + "-unknown"
			forged, _ := json.Marshal(cur)
			res, err := s.Changes(ctx, serversync.KindContact, forged)
			if err != nil {
				t.Fatalf("stale token: %v", err)
			}
			found := false
			for _, ch := range res.Changes {
				found = found || ch.ServerID == c.ServerID
			}
			if !res.Reset || !found {
				t.Fatalf("stale token: reset %v, item listed %v", res.Reset, found)
			}
		})
	}
}

func TestSilentServerTimesOut(t *testing.T) {
	release := make(chan struct{})
	url, pem := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	tg := target(url, pem)
	tg.Endpoint.Timeout = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err := (&dav.Connector{}).OpenACT(ctx, tg)
	if code(err) != serversync.CodeTimeout || time.Since(start) > 10*time.Second {
		t.Fatalf("a server that never answers: %v after %v, want %s", err, time.Since(start), serversync.CodeTimeout)
	}
}
