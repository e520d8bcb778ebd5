package rest

import (
	"strings"
	"testing"
	"time"

	"provision/plan"
)

func TestTransports_OnePerTLSConfigAndTimeout(t *testing.T) {
	var ts Transports
	a, err := ts.Get(plan.TLS{Insecure: true}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := ts.Get(plan.TLS{Insecure: true}, DefaultTimeout); b != a {
		t.Error("the same TLS configuration and timeout got another transport")
	}
	for name, tc := range map[string]struct {
		tls     plan.TLS
		timeout int
	}{
		"verified":      {tls: plan.TLS{}},
		"server name":   {tls: plan.TLS{Insecure: true, ServerName: "store.example.com"}},
		"fingerprint":   {tls: plan.TLS{Fingerprint: strings.Repeat("ab", 32)}},
		"other timeout": {tls: plan.TLS{Insecure: true}, timeout: 7},
	} {
		b, err := ts.Get(tc.tls, DefaultTimeout+time.Duration(tc.timeout)*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if b == a {
			t.Errorf("%s: shares the insecure transport", name)
		}
	}
	if _, err := ts.Get(plan.TLS{Insecure: true, Fingerprint: "ab"}, 0); err == nil {
		t.Error("an invalid TLS configuration got a transport")
	}
}
