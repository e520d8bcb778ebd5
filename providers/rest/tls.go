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
			return errors.New("tls: server sent no certificate")
		}
		leaf := cs.PeerCertificates[0]
		got := sha256.Sum256(leaf.Raw)
		if hex.EncodeToString(got[:]) != want {
			return fmt.Errorf("tls: certificate fingerprint mismatch: server presented sha256 %s, plan pins %s", hex.EncodeToString(got[:]), want)
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
