package rest

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"provision/plan"
)

// TLSConfig builds the client TLS configuration for an endpoint or server:
//   - CA bundle: the chain must verify against it (instead of the system roots);
//   - fingerprint: the leaf certificate's SHA-256 must match (the chain is then not
//     checked against any root unless a CA bundle is also given: this is how a
//     self-signed server certificate is pinned);
//   - insecure: no verification at all, only when the plan says so.
func TLSConfig(t plan.TLS) (*tls.Config, error) {
	if t.Insecure && (len(t.CAPEM) > 0 || t.Fingerprint != "") {
		return nil, errors.New("tls: insecure cannot be combined with ca_file or fingerprint_sha256")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.Insecure {
		cfg.InsecureSkipVerify = true
		return cfg, nil
	}
	var roots *x509.CertPool
	if len(t.CAPEM) > 0 {
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(t.CAPEM) {
			return nil, errors.New("tls: ca_file holds no PEM certificate")
		}
		cfg.RootCAs = roots
	}
	if t.Fingerprint == "" {
		return cfg, nil
	}
	want, err := ParseFingerprint(t.Fingerprint)
	if err != nil {
		return nil, err
	}
	// Verification is done in VerifyConnection: the pin always, the chain when a CA
	// bundle is given.
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return &PinError{Want: want}
		}
		leaf := cs.PeerCertificates[0]
		got := sha256.Sum256(leaf.Raw)
		if hex.EncodeToString(got[:]) != want {
			return &PinError{Got: hex.EncodeToString(got[:]), Want: want}
		}
		if roots != nil {
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			name := cs.ServerName
			if t.ServerName != "" {
				name = t.ServerName
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: name}); err != nil {
				return fmt.Errorf("tls: %w", err)
			}
		}
		return nil
	}
	return cfg, nil
}

// ParseFingerprint normalises a SHA-256 fingerprint ("AB:CD:..." or hex) to lower-case hex.
func ParseFingerprint(s string) (string, error) {
	h := strings.ToLower(strings.NewReplacer(":", "", " ", "", "-", "").Replace(strings.TrimSpace(s)))
	if len(h) != 64 {
		return "", fmt.Errorf("tls: fingerprint_sha256 must be 64 hex digits, got %d", len(h))
	}
	if _, err := hex.DecodeString(h); err != nil {
		return "", fmt.Errorf("tls: fingerprint_sha256 is not hex")
	}
	return h, nil
}

// PinError is a server certificate that does not match the plan's
// fingerprint_sha256 (or no certificate at all: Got is then empty).
type PinError struct {
	Got, Want string
}

func (e *PinError) Error() string {
	if e.Got == "" {
		return "tls: server sent no certificate"
	}
	return fmt.Sprintf("tls: certificate fingerprint mismatch: server presented sha256 %s, plan pins %s", e.Got, e.Want)
}

// IsTLSFailure reports whether err is a TLS handshake or certificate failure, which
// no retry will fix: a chain that does not verify (unknown authority, wrong host
// name, expired or otherwise invalid certificate, constraint or algorithm
// failures), a pin mismatch, an alert from the server, or an answer that is not
// TLS at all (a plain HTTP server on an https URL).
func IsTLSFailure(err error) bool {
	var (
		verify     *tls.CertificateVerificationError
		record     tls.RecordHeaderError
		alert      tls.AlertError
		ech        *tls.ECHRejectionError
		authority  x509.UnknownAuthorityError
		hostname   x509.HostnameError
		invalid    x509.CertificateInvalidError
		roots      x509.SystemRootsError
		constraint x509.ConstraintViolationError
		critical   x509.UnhandledCriticalExtension
		algorithm  x509.InsecureAlgorithmError
		pin        *PinError
	)
	return errors.As(err, &verify) || errors.As(err, &record) || errors.As(err, &alert) || errors.As(err, &ech) ||
		errors.As(err, &authority) || errors.As(err, &hostname) || errors.As(err, &invalid) ||
		errors.As(err, &roots) || errors.As(err, &constraint) || errors.As(err, &critical) ||
		errors.As(err, &algorithm) || errors.As(err, &pin)
}
