package auth_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/internal/testcert"
)

// testKey is one 2048-bit key for the whole package: generating RSA keys is slow
// under -race.
var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return key
})

func clientCert(t testing.TB, notBefore, notAfter time.Time) *testcert.ClientCert {
	t.Helper()
	cc, err := testcert.ClientCertWithKey("serversync app", testKey(), notBefore, notAfter)
	if err != nil {
		t.Fatal(err)
	}
	return cc
}

func validClientCert(t testing.TB) *testcert.ClientCert {
	return clientCert(t, time.Now().Add(-time.Hour), time.Now().Add(365*24*time.Hour))
}

func parsed(t testing.TB, cc *testcert.ClientCert) *auth.ClientCertificate {
	t.Helper()
	c, err := auth.ParseClientCertificate(cc.CertPEM, auth.NewSecret(cc.KeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestParseClientCertificate(t *testing.T) {
	cc := validClientCert(t)
	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(cc.Key)}))
	other, err := testcert.NewClientCert("other", 2048, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	short, err := testcert.NewClientCert("short", 1024, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalECPrivateKey(ecKey)
	ecPEM := string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}))
	ecPKCS8, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	ecPKCS8PEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecPKCS8}))
	_, ecCertPEM := testcert.Must() // an ECDSA certificate
	encrypted := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY",
		Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00000000000000000000000000000000"},
		Bytes:   []byte("not really encrypted")}))

	for _, tc := range []struct {
		name, cert, key string
		want            error
		wantText        string
	}{
		{"PKCS#8", cc.CertPEM, cc.KeyPEM, nil, ""},
		{"PKCS#1", cc.CertPEM, pkcs1, nil, ""},
		{"chain, leaf first", cc.CertPEM + other.CertPEM, cc.KeyPEM, nil, ""},
		{"key after other blocks", cc.CertPEM, other.CertPEM + cc.KeyPEM, nil, ""},
		{"wrong key", cc.CertPEM, other.KeyPEM, auth.ErrCertificateKeyMismatch, "does not match"},
		{"chain with the wrong leaf", other.CertPEM + cc.CertPEM, cc.KeyPEM, auth.ErrCertificateKeyMismatch, ""},
		{"short key", short.CertPEM, short.KeyPEM, auth.ErrBadCertificate, "1024 bits"},
		{"garbage certificate", "hello", cc.KeyPEM, auth.ErrBadCertificate, "no CERTIFICATE"},
		{"corrupt certificate", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")})), cc.KeyPEM, auth.ErrBadCertificate, "cannot be parsed"},
		{"garbage key", cc.CertPEM, "hello", auth.ErrBadCertificate, "no private key"},
		{"empty key", cc.CertPEM, "", auth.ErrBadCertificate, "no private key"},
		{"corrupt key", cc.CertPEM, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("junk")})), auth.ErrBadCertificate, "cannot be parsed"},
		{"encrypted key", cc.CertPEM, encrypted, auth.ErrBadCertificate, "encrypted"},
		{"PKCS#8 encrypted key", cc.CertPEM, string(pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte("x")})), auth.ErrBadCertificate, "encrypted"},
		{"EC key", cc.CertPEM, ecPEM, auth.ErrBadCertificate, "EC key"},
		{"EC key in PKCS#8", cc.CertPEM, ecPKCS8PEM, auth.ErrBadCertificate, "not RSA"},
		{"EC certificate", ecCertPEM, cc.KeyPEM, auth.ErrBadCertificate, "not RSA"},
		{"key inside the certificate PEM", cc.CertPEM + cc.KeyPEM, cc.KeyPEM, auth.ErrBadCertificate, "separately"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := auth.ParseClientCertificate(tc.cert, auth.NewSecret(tc.key))
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if !c.Certificate.Equal(cc.Certificate) || !c.Key.Equal(cc.Key) {
					t.Fatal("parsed the wrong certificate or key")
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("err = %q, want it to say %q", err, tc.wantText)
			}
			if strings.Contains(err.Error(), "MII") || strings.Contains(err.Error(), cc.Key.D.String()[:20]) {
				t.Errorf("the error quotes key material: %q", err)
			}
		})
	}
}

func TestClientCertificatePrintsNoKey(t *testing.T) {
	c := parsed(t, validClientCert(t))
	d := c.Key.D.String()
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(verb, c)
		if strings.Contains(out, d[:20]) || strings.Contains(out, "PRIVATE") {
			t.Errorf("%s prints the key: %s", verb, out)
		}
		if !strings.Contains(out, c.ThumbprintS256()) {
			t.Errorf("%s does not name the certificate: %s", verb, out)
		}
	}
}

func TestCheckValidAt(t *testing.T) {
	notBefore := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	notAfter := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	c := parsed(t, clientCert(t, notBefore, notAfter))
	if !c.NotAfter().Equal(notAfter) {
		t.Errorf("NotAfter = %v", c.NotAfter())
	}
	if err := c.CheckValidAt(notBefore.Add(time.Hour)); err != nil {
		t.Errorf("valid certificate: %v", err)
	}
	err := c.CheckValidAt(notAfter.Add(time.Second))
	if !errors.Is(err, auth.ErrCertificateExpired) || !strings.Contains(err.Error(), "expired on 2027-01-01 00:00:00Z") {
		t.Errorf("expired: %v", err)
	}
	err = c.CheckValidAt(notBefore.Add(-time.Second))
	if !errors.Is(err, auth.ErrCertificateExpired) || !strings.Contains(err.Error(), "valid from 2026-01-01 00:00:00Z") {
		t.Errorf("not yet valid: %v", err)
	}
}

// decodeJWT splits a JWT into its decoded header, claims and signature.
func decodeJWT(t testing.TB, token string) (header, claims map[string]any, signingInput string, sig []byte) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("a JWT has 3 parts, got %d", len(parts))
	}
	decode := func(s string, into any) []byte {
		raw, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("not unpadded base64url: %v", err)
		}
		if into != nil {
			if err := json.Unmarshal(raw, into); err != nil {
				t.Fatal(err)
			}
		}
		return raw
	}
	decode(parts[0], &header)
	decode(parts[1], &claims)
	return header, claims, parts[0] + "." + parts[1], decode(parts[2], nil)
}

func TestClientAssertion(t *testing.T) {
	c := parsed(t, validClientCert(t))
	now := time.Unix(1_800_000_000, 0)
	const aud = "https://login.microsoftonline.com/tenant/oauth2/v2.0/token"
	sum := sha256.Sum256(c.Certificate.Raw)
	wantX5t := base64.RawURLEncoding.EncodeToString(sum[:])
	if c.ThumbprintS256() != wantX5t {
		t.Fatalf("ThumbprintS256 = %s, want %s", c.ThumbprintS256(), wantX5t)
	}
	jtis := map[any]bool{}
	for _, alg := range []auth.AssertionAlgorithm{auth.AssertionPS256, auth.AssertionRS256} {
		t.Run(string(alg), func(t *testing.T) {
			jwt, err := c.ClientAssertion("client-1", aud, alg, now)
			if err != nil {
				t.Fatal(err)
			}
			header, claims, input, sig := decodeJWT(t, jwt)
			wantHeader := map[string]any{"alg": string(alg), "typ": "JWT", "x5t#S256": wantX5t}
			if fmt.Sprint(header) != fmt.Sprint(wantHeader) {
				t.Errorf("header = %v, want %v", header, wantHeader)
			}
			for k, want := range map[string]any{"aud": aud, "iss": "client-1", "sub": "client-1",
				"nbf": float64(now.Unix()), "iat": float64(now.Unix()), "exp": float64(now.Add(5 * time.Minute).Unix())} {
				if claims[k] != want {
					t.Errorf("claim %s = %v, want %v", k, claims[k], want)
				}
			}
			jti, _ := claims["jti"].(string)
			if len(jti) != 36 || jtis[jti] {
				t.Errorf("jti %q is not a fresh GUID", jti)
			}
			jtis[jti] = true
			digest := sha256.Sum256([]byte(input))
			pub := &c.Key.PublicKey
			if alg == auth.AssertionPS256 {
				err = rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
			} else {
				err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig)
			}
			if err != nil {
				t.Errorf("signature does not verify: %v", err)
			}
			// Tampering breaks it.
			digest2 := sha256.Sum256([]byte(input + "x"))
			if rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest2[:], sig) == nil || rsa.VerifyPSS(pub, crypto.SHA256, digest2[:], sig, nil) == nil {
				t.Error("a tampered assertion verifies")
			}
		})
	}
	if _, err := c.ClientAssertion("client-1", aud, "none", now); err == nil {
		t.Error("alg none accepted")
	}
	if _, err := c.ClientAssertion("", aud, auth.AssertionPS256, now); err == nil {
		t.Error("empty client ID accepted")
	}
	var nilCert *auth.ClientCertificate
	if _, err := nilCert.ClientAssertion("c", aud, auth.AssertionPS256, now); !errors.Is(err, auth.ErrBadCertificate) {
		t.Errorf("nil certificate: %v", err)
	}
}

func TestAppTokenURL(t *testing.T) {
	for _, tc := range []struct{ authority, tenant, want string }{
		{"", "contoso.onmicrosoft.com", "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"},
		{"https://login.microsoftonline.us/", "t1", "https://login.microsoftonline.us/t1/oauth2/v2.0/token"},
		{"https://127.0.0.1:8443", "a/b", "https://127.0.0.1:8443/a%2Fb/oauth2/v2.0/token"},
	} {
		if got := auth.AppTokenURL(tc.authority, tc.tenant); got != tc.want {
			t.Errorf("AppTokenURL(%q, %q) = %s, want %s", tc.authority, tc.tenant, got, tc.want)
		}
	}
}
