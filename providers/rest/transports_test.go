package rest

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
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

// 100 requests at once to one host, three times over: the connections of the first
// round carry the next two, none is closed for want of an idle slot and dialled again.
func TestClient_Do_ReusesEveryConnectionToOneHost(t *testing.T) {
	var dialled atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dialled.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c, err := New(Config{Name: "t", BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	const inFlight = 100
	for round := 0; round < 3; round++ {
		getAtOnce(t, c, inFlight)
	}
	if n := dialled.Load(); n > inFlight {
		t.Errorf("%d connections for 3 rounds of %d requests at once: idle connections were closed and dialled again", n, inFlight)
	}
}

// getAtOnce sends n GETs of / through c at once and waits for every answer.
func getAtOnce(t *testing.T, c *Client, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Do(context.Background(), &Request{Method: "GET", Path: "/"}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}
