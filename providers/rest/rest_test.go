package rest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"provision/plan"
	"provision/providers"
)

func TestClient_Do_ClassifiesAnswers(t *testing.T) {
	for _, tc := range []struct {
		name          string
		status        int
		header        map[string]string
		body          string
		idempotent    bool
		wantRetry     bool
		wantApplied   bool
		wantRetryWait time.Duration
		wantMsg       string
	}{
		{name: "400 permanent with API message", status: 400, body: `{"errorClass":"badRequest","resultCode":"invalidFormat","errorText":"bad email"}`, wantMsg: "bad email"},
		{name: "403 permanent", status: 403, body: `{"message":"forbidden here"}`, wantMsg: "forbidden here"},
		{name: "404 permanent", status: 404, body: `"Cloud Space not found"`, wantMsg: "Cloud Space not found"},
		{name: "429 retryable with Retry-After", status: 429, header: map[string]string{"Retry-After": "2"}, body: `{}`, wantRetry: true, wantRetryWait: 2 * time.Second},
		{name: "503 retryable not applied", status: 503, body: `{"errorText":"retry later"}`, wantRetry: true, wantMsg: "retry later"},
		{name: "500 on create may be applied", status: 500, body: `oops`, wantRetry: true, wantApplied: true, wantMsg: "oops"},
		{name: "500 on idempotent call", status: 500, body: `oops`, idempotent: true, wantRetry: true},
		{name: "HTML error page", status: 502, header: map[string]string{"Content-Type": "text/html"}, body: `<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>`, wantRetry: true, wantApplied: true, wantMsg: `HTML page "502 Bad Gateway"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			c, err := New(Config{Name: "t", BaseURL: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Do(context.Background(), &Request{Method: "POST", Path: "/x", JSON: map[string]string{"a": "b"}, Idempotent: tc.idempotent})
			var pe *providers.Error
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want *providers.Error", err)
			}
			if pe.Status != tc.status || pe.Retryable != tc.wantRetry || pe.MaybeApplied != tc.wantApplied {
				t.Errorf("status %d retry %v applied %v, want %d %v %v", pe.Status, pe.Retryable, pe.MaybeApplied, tc.status, tc.wantRetry, tc.wantApplied)
			}
			if pe.RetryAfter != tc.wantRetryWait {
				t.Errorf("RetryAfter = %v, want %v", pe.RetryAfter, tc.wantRetryWait)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tc.wantMsg)
			}
		})
	}
}

func TestClient_Do_TooManyRequestsPausesWholeEndpoint(t *testing.T) {
	var first atomic.Bool
	var mu sync.Mutex
	var times []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		if first.CompareAndSwap(false, true) {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(429)
			return
		}
		w.WriteHeader(200)
	}))
	defer srv.Close()
	c, _ := New(Config{Name: "t", BaseURL: srv.URL})
	ctx := context.Background()
	if _, err := c.Do(ctx, &Request{Method: "GET", Path: "/"}); !providers.IsRetryable(err) {
		t.Fatalf("first call: %v, want retryable 429", err)
	}
	start := time.Now()
	// Another task's call on the same endpoint waits for the pause.
	if _, err := c.Do(ctx, &Request{Method: "GET", Path: "/other"}); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 800*time.Millisecond {
		t.Errorf("second call went out after %v; want it held back by the 1s Retry-After", waited)
	}
}

func TestClient_Do_RenewsExpiredTokenOnce(t *testing.T) {
	var issued atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			n := issued.Add(1)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"access_token":"tok-` + string(rune('0'+n)) + `","expires_in":"3600"}`))
			return
		}
		// Only the second token is accepted: the first "expired".
		if r.Header.Get("Authorization") != "Bearer tok-2" {
			w.WriteHeader(401)
			return
		}
		w.WriteHeader(204)
	}))
	defer srv.Close()
	auth, err := OAuth2(plan.Auth{Type: "oauth2-client-credentials", TokenURL: "/token", ClientID: "id", ClientSecret: plan.NewSecret("secret-value")}, "client_credentials", plan.NewRedactor())
	if err != nil {
		t.Fatal(err)
	}
	c, _ := New(Config{Name: "t", BaseURL: srv.URL, Auth: auth})
	if _, err := c.Do(context.Background(), &Request{Method: "GET", Path: "/thing"}); err != nil {
		t.Fatalf("call after renewal: %v", err)
	}
	if got := auth.Fetches(); got != 2 {
		t.Errorf("tokens fetched = %d, want 2 (one renewal)", got)
	}
}

func TestClient_Do_RefusesRedirectToOtherHost(t *testing.T) {
	var leaked atomic.Bool
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			leaked.Store(true)
		}
	}))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/steal", http.StatusFound)
	}))
	defer srv.Close()
	c, _ := New(Config{Name: "t", BaseURL: srv.URL, Auth: BearerAuth{Token: plan.NewSecret("bearer-canary-value")}})
	_, err := c.Do(context.Background(), &Request{Method: "GET", Path: "/x"})
	if !errors.Is(err, ErrRedirectRefused) || !strings.Contains(err.Error(), "refused redirect") {
		t.Fatalf("err = %v, want ErrRedirectRefused", err)
	}
	if providers.IsRetryable(err) {
		t.Error("a refused redirect must not be retried")
	}
	if leaked.Load() {
		t.Error("credentials were sent to the other host")
	}
}

func TestClient_Do_CapsBodySize(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(strings.Repeat("x", 4096)))
	}))
	defer srv.Close()
	c, _ := New(Config{Name: "t", BaseURL: srv.URL, MaxBody: 1024})
	_, err := c.Do(context.Background(), &Request{Method: "GET", Path: "/"})
	if err == nil || !strings.Contains(err.Error(), "larger than 1024") {
		t.Fatalf("err = %v, want body cap error", err)
	}
}

func TestClient_Do_PathPrefixIsKept(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.RequestURI()
	}))
	defer srv.Close()
	c, _ := New(Config{Name: "t", BaseURL: srv.URL + "/api/v2/"})
	if _, err := c.Do(context.Background(), &Request{Method: "GET", Path: "/items?name=a", Query: map[string][]string{"page": {"2"}}}); err != nil {
		t.Fatal(err)
	}
	if got != "/api/v2/items?name=a&page=2" {
		t.Errorf("request URI = %q", got)
	}
}

func TestTLSConfig_PinsAndCABundles(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	defer srv.Close()
	leaf := srv.Certificate()
	sum := sha256.Sum256(leaf.Raw)
	good := hex.EncodeToString(sum[:])
	colon := strings.ToUpper(strings.Join(splitPairs(good), ":"))
	bad := strings.Repeat("ab", 32)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})
	otherPEM := selfSignedPEM(t)
	for _, tc := range []struct {
		name    string
		tls     plan.TLS
		wantErr string
	}{
		{name: "system roots refuse self-signed", tls: plan.TLS{}, wantErr: "certificate"},
		{name: "pinned fingerprint accepted", tls: plan.TLS{Fingerprint: good}},
		{name: "pinned fingerprint with colons accepted", tls: plan.TLS{Fingerprint: colon}},
		{name: "wrong fingerprint refused", tls: plan.TLS{Fingerprint: bad}, wantErr: "fingerprint mismatch"},
		{name: "CA bundle accepted", tls: plan.TLS{CAPEM: caPEM}},
		{name: "wrong CA bundle refused", tls: plan.TLS{CAPEM: otherPEM}, wantErr: "certificate"},
		{name: "CA bundle and pin both pass", tls: plan.TLS{CAPEM: caPEM, Fingerprint: good}},
		{name: "CA bundle right, pin wrong", tls: plan.TLS{CAPEM: caPEM, Fingerprint: bad}, wantErr: "fingerprint mismatch"},
		{name: "insecure only when asked", tls: plan.TLS{Insecure: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(Config{Name: "t", BaseURL: srv.URL, TLS: tc.tls})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Do(context.Background(), &Request{Method: "GET", Path: "/"})
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if providers.IsRetryable(err) {
				t.Error("a TLS verification failure must not be retried")
			}
		})
	}
	if _, err := TLSConfig(plan.TLS{Insecure: true, Fingerprint: good}); err == nil {
		t.Error("insecure with a pin must be refused")
	}
	if _, err := TLSConfig(plan.TLS{Fingerprint: "abc"}); err == nil {
		t.Error("short fingerprint must be refused")
	}
}

// selfSignedPEM makes a CA certificate unrelated to httptest's.
func selfSignedPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(7),
		Subject:               pkix.Name{CommonName: "other test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func splitPairs(h string) []string {
	var out []string
	for i := 0; i+2 <= len(h); i += 2 {
		out = append(out, h[i:i+2])
	}
	return out
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"3", 3 * time.Second}, {"0.5", 500 * time.Millisecond}, {"-1", 0}, {"soon", 0},
		{"99999", 99999 * time.Second}, {"1e300", 100 * 365 * 24 * time.Hour}, {"NaN", 0}, {now.Add(7 * time.Second).Format(http.TimeFormat), 7 * time.Second},
	} {
		if got := ParseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func FuzzDefaultErrorDecoder(f *testing.F) {
	for _, s := range []string{`{"errorText":"x","resultCode":"y"}`, `"text"`, `<html><title>t</title>`, `{"error":`, `[1,2]`, "", `{"errorDetail":12}`} {
		f.Add(500, []byte(s))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		_, msg := DefaultErrorDecoder(status, http.Header{}, body)
		if len(msg) > 400 {
			t.Fatalf("message not clipped: %d bytes", len(msg))
		}
	})
}

func TestClient_Do_TransportErrorsDoNotQuoteTheURL(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hj, _ := w.(http.Hijacker)
		conn, _, _ := hj.Hijack()
		conn.Close()
	}))
	defer srv.Close()
	c, _ := New(Config{Name: "t", BaseURL: srv.URL})
	_, err := c.Do(context.Background(), &Request{Method: "POST", Path: "/cloudspaces/create", Query: map[string][]string{"authkey": {"session-key-canary"}}})
	if err == nil || strings.Contains(err.Error(), "session-key-canary") {
		t.Fatalf("err = %v", err)
	}
	if !providers.MaybeApplied(err) || !providers.IsRetryable(err) {
		t.Errorf("a dropped POST must be retryable and maybe applied: %+v", err)
	}
}

// A request that got past the pause before a 429 arrived, and was then waiting for
// its turn at the endpoint's rate or for a free slot, must not go out during the
// pause the 429 started: the server said when to come back.
func TestClient_Do_PauseHoldsRequestsAlreadyWaitingForRateOrSlot(t *testing.T) {
	for _, tc := range []struct {
		name   string
		limits plan.Limits
		delay  time.Duration // how long the server takes to answer the 429
	}{
		// The second request holds a reservation at the rate 500 ms out.
		{"waiting for the rate", plan.Limits{RatePerSecond: 2, Burst: 1}, 0},
		// The second request waits for the only slot while the first is answered.
		{"waiting for a slot", plan.Limits{Concurrency: 1}, 150 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			var mu sync.Mutex
			var throttledAt, secondAt time.Time
			entered := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) == 1 {
					close(entered)
					time.Sleep(tc.delay)
					mu.Lock()
					throttledAt = time.Now()
					mu.Unlock()
					w.Header().Set("Retry-After", "1")
					w.WriteHeader(429)
					return
				}
				mu.Lock()
				secondAt = time.Now()
				mu.Unlock()
			}))
			defer srv.Close()
			c, _ := New(Config{Name: "t", BaseURL: srv.URL, Limits: tc.limits})
			ctx := context.Background()
			first := make(chan error, 1)
			go func() {
				_, err := c.Do(ctx, &Request{Method: "GET", Path: "/first"})
				first <- err
			}()
			<-entered
			if _, err := c.Do(ctx, &Request{Method: "GET", Path: "/second"}); err != nil {
				t.Fatal(err)
			}
			if err := <-first; !providers.IsRetryable(err) {
				t.Fatalf("first call: %v, want retryable 429", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if gap := secondAt.Sub(throttledAt); gap < 900*time.Millisecond {
				t.Errorf("second request reached the server %v after the 429 with Retry-After: 1; want it held for the pause", gap)
			}
		})
	}
}

func TestClient_Do_EndpointLimits(t *testing.T) {
	var cur, peak atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		cur.Add(-1)
	}))
	defer srv.Close()
	c, _ := New(Config{Name: "t", BaseURL: srv.URL, Limits: plan.Limits{Concurrency: 2, RatePerSecond: 40, Burst: 1}})
	start := time.Now()
	getAtOnce(t, c, 12)
	if p := peak.Load(); p > 2 {
		t.Errorf("peak concurrency %d, cap is 2", p)
	}
	// 12 requests at 40/s with a burst of 1 need at least 11 intervals of 25 ms.
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("12 requests took %v: the rate limit was not applied", d)
	}
}
