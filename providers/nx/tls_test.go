package nx

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http/httptest"
	"strings"
	"testing"

	"provision/providers"
	"provision/providers/nx/nxfake"
)

// TestSystem_Apply_ServerTLSIsPinned serves the fake servers over TLS with a
// self-signed certificate: a matching pin is accepted; a wrong pin or no pin fails
// clearly, is not retried, and no cloud system is bound for an untrusted server.
func TestSystem_Apply_ServerTLSIsPinned(t *testing.T) {
	for _, tc := range []struct{ name, tls, want string }{
		{"pinned", "PIN", ""},
		{"wrong pin", "tls: {fingerprint_sha256: " + strings.Repeat("ab", 32) + "}", "fingerprint mismatch"},
		{"no pin", "", "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nxfake.Options{})
			tlsSrv := httptest.NewTLSServer(e.world)
			defer tlsSrv.Close()
			sum := sha256.Sum256(tlsSrv.Certificate().Raw)
			tlsLine := strings.Replace(tc.tls, "PIN", "tls: {fingerprint_sha256: "+hex.EncodeToString(sum[:])+"}", 1)
			text := strings.Replace(onePlan, "url: https://10.0.0.1:7001", "url: https://10.0.0.1:7001\n      "+tlsLine, 1)
			pl, err := e.load(text)
			if err != nil {
				t.Fatal(err)
			}
			b := &providers.Build{Plan: pl, Clients: &providers.Clients{},
				ServerURL: func(u string) string { return e.world.ServerURLFor(tlsSrv.URL, u) }}
			var sys *providers.Task
			for _, it := range pl.Items {
				ts, err := (&SystemKind{}).Build(b, it)
				if err != nil {
					t.Fatal(err)
				}
				sys = ts[0]
			}
			_, _, err = apply(t, sys, call{})
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				noDamage(t, e.world, map[string]string{"store-1": server1})
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || providers.IsRetryable(err) {
				t.Fatalf("err = %v", err)
			}
			if n := e.world.Snapshot().Counters.Binds; n != 0 {
				t.Errorf("%d cloud systems bound for an untrusted server", n)
			}
		})
	}
}
