// Package testcert makes throwaway TLS certificates for servers on loopback: the
// in-process servers of fast tests and of the quickstart. Clients trust the PEM it
// returns as an extra root, so certificate verification stays on everywhere.
package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"time"
)

// New returns a self-signed certificate for 127.0.0.1 and localhost, valid for a
// day, and its PEM for clients to trust.
func New() (tls.Certificate, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "serversync test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), nil
}

// Must is New for tests and examples, where a failure to make a key is fatal.
func Must() (tls.Certificate, string) {
	cert, pemText, err := New()
	if err != nil {
		panic(err)
	}
	return cert, pemText
}

// ClientCert is a self-signed RSA client certificate, as registered with an app
// registration for server-to-server authentication, with its PEM forms.
type ClientCert struct {
	Certificate *x509.Certificate
	Key         *rsa.PrivateKey
	CertPEM     string
	KeyPEM      string // PKCS#8 "PRIVATE KEY"
}

// NewClientCert makes a self-signed RSA client certificate with the given key size
// and validity, for tests of certificate credentials (expired, not yet valid,
// short keys…).
func NewClientCert(commonName string, bits int, notBefore, notAfter time.Time) (*ClientCert, error) {
	key, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return nil, err
	}
	return ClientCertWithKey(commonName, key, notBefore, notAfter)
}

// ClientCertWithKey is NewClientCert for an existing key: several certificates of
// one key, or a certificate made cheaply in a loop.
func ClientCertWithKey(commonName string, key *rsa.PrivateKey, notBefore, notAfter time.Time) (*ClientCert, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: commonName},
		NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &ClientCert{
		Certificate: cert, Key: key,
		CertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		KeyPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})),
	}, nil
}
