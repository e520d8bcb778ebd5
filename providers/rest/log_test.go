package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"provision/plan"
)

// With a logger in the context at debug level, every request is logged with the
// context's fields (task, attempt), method, route, status and duration in
// milliseconds; no query string value, header or credential.
func TestClient_Do_LogsEachRequestFromTheContextLogger(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/gone" {
			hj, _ := w.(http.Hijacker)
			conn, _, _ := hj.Hijack()
			conn.Close()
			return
		}
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	c, _ := New(Config{Name: "api", BaseURL: srv.URL, Auth: BearerAuth{Token: plan.NewSecret("bearer-canary-value")}})
	var buf bytes.Buffer
	log := zerolog.New(&buf).Level(zerolog.DebugLevel).With().Str("task", "widget-1").Int("attempt", 2).Logger()
	ctx := log.WithContext(context.Background())
	q := map[string][]string{"authkey": {"session-key-canary"}}
	if _, err := c.Do(ctx, &Request{Method: "POST", Path: "/v1/widgets", Query: q}); err != nil {
		t.Fatal(err)
	}
	c.Do(ctx, &Request{Method: "GET", Path: "/gone", Query: q, Idempotent: true})
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) < 2 {
		t.Fatalf("want a line per request:\n%s", buf.String())
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"level": "debug", "task": "widget-1", "attempt": 2.0, "method": "POST", "route": "/v1/widgets", "status": 201.0, "endpoint": "api", "message": "request"} {
		if first[k] != want {
			t.Errorf("%s = %v, want %v (%s)", k, first[k], want, lines[0])
		}
	}
	if _, ok := first["took_ms"].(float64); !ok {
		t.Errorf("no took_ms: %s", lines[0])
	}
	if !strings.Contains(buf.String(), `"route":"/gone"`) || !strings.Contains(buf.String(), `"request failed"`) {
		t.Errorf("failed request not logged:\n%s", buf.String())
	}
	for _, secret := range []string{"session-key-canary", "bearer-canary-value", "authkey"} {
		if strings.Contains(buf.String(), secret) {
			t.Errorf("log holds %q:\n%s", secret, buf.String())
		}
	}
	// Without a logger in the context nothing is written anywhere.
	if _, err := c.Do(context.Background(), &Request{Method: "POST", Path: "/v1/widgets"}); err != nil {
		t.Fatal(err)
	}
}
