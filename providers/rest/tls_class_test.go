package rest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"provision/plan"
	"provision/providers"
)

// Each class of TLS failure is recognised by its type (errors.As), not by its
// text, and is permanent: no retry fixes a certificate, and nothing was sent.
func TestClient_Do_ClassifiesTLSFailuresByType(t *testing.T) {
	selfSigned := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	defer selfSigned.Close()
	selfPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: selfSigned.Certificate().Raw})

	expiredCert, expiredPEM := expiredCertificate(t)
	expired := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	expired.TLS = &tls.Config{Certificates: []tls.Certificate{expiredCert}}
	expired.StartTLS()
	defer expired.Close()

	notTLS := notTLSServer(t)

	for _, tc := range []struct {
		name string
		url  string
		tls  plan.TLS
		is   func(error) bool
	}{
		{"self-signed against the system roots", selfSigned.URL, plan.TLS{},
			func(err error) bool {
				return as[x509.UnknownAuthorityError](err) && as[*tls.CertificateVerificationError](err)
			}},
		{"certificate for another host name", selfSigned.URL, plan.TLS{CAPEM: selfPEM, ServerName: "wrong.example"},
			func(err error) bool { return as[x509.HostnameError](err) && as[*tls.CertificateVerificationError](err) }},
		{"expired certificate", expired.URL, plan.TLS{CAPEM: expiredPEM},
			func(err error) bool {
				var e x509.CertificateInvalidError
				return errors.As(err, &e) && e.Reason == x509.Expired
			}},
		{"wrong pin", selfSigned.URL, plan.TLS{Fingerprint: fmt.Sprintf("%064x", 1)}, as[*PinError]},
		{"a server that does not speak TLS", "https://" + notTLS, plan.TLS{}, as[tls.RecordHeaderError]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(Config{Name: "t", BaseURL: tc.url, TLS: tc.tls})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Do(context.Background(), &Request{Method: "POST", Path: "/create", JSON: map[string]string{"name": "x"}})
			if err == nil || !tc.is(err) {
				t.Fatalf("err = %v (%T), not of the expected type", err, errors.Unwrap(err))
			}
			if !IsTLSFailure(err) {
				t.Errorf("IsTLSFailure(%v) = false", err)
			}
			var pe *providers.Error
			if !errors.As(err, &pe) || pe.Retryable || pe.MaybeApplied {
				t.Fatalf("err = %+v, want a permanent *providers.Error that applied nothing", err)
			}
		})
	}
}

// A dropped connection after the request was sent is not a TLS failure: it stays
// retryable and may have applied a create (the classification catches no more than
// the TLS and x509 types).
func TestClient_Do_DroppedConnectionIsNotATLSFailure(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer srv.Close()
	c, err := New(Config{Name: "t", BaseURL: srv.URL, TLS: plan.TLS{Insecure: true}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Do(context.Background(), &Request{Method: "POST", Path: "/create", JSON: map[string]string{"name": "x"}})
	var pe *providers.Error
	if !errors.As(err, &pe) || IsTLSFailure(err) || !pe.Retryable || !pe.MaybeApplied {
		t.Fatalf("err = %+v, want a retryable error that may have applied the create", err)
	}
}

func TestIsTLSFailure_SeesThroughWrapping(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("dial: %w", x509.UnknownAuthorityError{}), true},
		{fmt.Errorf("dial: %w", &tls.CertificateVerificationError{Err: x509.HostnameError{Host: "h"}}), true},
		{fmt.Errorf("handshake: %w", tls.AlertError(42)), true},
		{&PinError{Want: "ab"}, true},
		{errors.New("x509: a text that only looks like one"), false},
		{&net.OpError{Op: "read", Err: errors.New("connection reset by peer")}, false},
	} {
		if got := IsTLSFailure(tc.err); got != tc.want {
			t.Errorf("IsTLSFailure(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// notTLSServer answers every connection with an SSH banner (not TLS, not HTTP) and
// returns its address.
func notTLSServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Write([]byte("SSH-2.0-OpenSSH_9.6\r\n"))
			conn.Close()
		}
	}()
	return ln.Addr().String()
}

func as[T any](err error) bool {
	var v T
	return errors.As(err, &v)
}

// expiredCertificate makes a self-signed certificate for 127.0.0.1 that expired an
// hour ago, and its PEM (to trust it as a CA).
func expiredCertificate(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(9),
		Subject:               pkix.Name{CommonName: "expired test server"},
		NotBefore:             time.Now().Add(-48 * time.Hour),
		NotAfter:              time.Now().Add(-time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
