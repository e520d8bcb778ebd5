package sandbox

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"provision/plan"
	"provision/providers/fault"
)

// echoFake answers every request with its kind and the path it saw.
type echoFake struct {
	kind string
	in   *fault.Injector
}

func (f echoFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.WriteString(w, f.kind+" "+r.URL.Path)
}
func (f echoFake) Injector() *fault.Injector { return f.in }

// plainExt serves one kind and nothing more.
type plainExt struct{ kind string }

func (e plainExt) Kinds() []string { return []string{e.kind} }
func (e plainExt) Mount(s *Sandbox, ep *plan.Endpoint, base string) (Fake, error) {
	return echoFake{kind: e.kind, in: fault.New(s.Options().Faults)}, nil
}

// routingExt also rewrites its endpoints and plays per-item servers under /farm/.
type routingExt struct{ plainExt }

func (e routingExt) Rewrite(ep *plan.Endpoint) { ep.Auth.TokenURL = ep.URL + "/token" }
func (e routingExt) ServerURL(base, raw string) (string, bool) {
	if !strings.HasPrefix(raw, "https://") {
		return raw, false
	}
	return base + "/farm/" + strings.TrimPrefix(raw, "https://"), true
}

func testPlan() *plan.Plan {
	p := &plan.Plan{Endpoints: map[string]*plan.Endpoint{}}
	for _, ep := range []*plan.Endpoint{
		{Name: "a", Kind: "alpha", URL: "https://a.example.com/x", TLS: plan.TLS{Insecure: true}, Auth: plan.Auth{TokenURL: "https://id.example.com/token"}},
		{Name: "b", Kind: "beta", URL: "https://b.example.com", Auth: plan.Auth{TokenURL: "https://id.example.com/token"}},
	} {
		p.Endpoints[ep.Name] = ep
		p.EndpointOrder = append(p.EndpointOrder, ep.Name)
	}
	return p
}

func TestSandbox_AsksTheExtensionOfEachKind(t *testing.T) {
	ext := []Extension{plainExt{"alpha"}, routingExt{plainExt{"beta"}}}
	sb, err := Start("127.0.0.1:0", Options{}, ext...)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	p := testPlan()
	if err := sb.Attach(p); err != nil {
		t.Fatal(err)
	}
	a, b := p.Endpoints["a"], p.Endpoints["b"]
	if a.URL != sb.URL()+"/a" || a.TLS.Insecure || b.URL != sb.URL()+"/b" {
		t.Errorf("URLs %q %q, TLS %+v", a.URL, b.URL, a.TLS)
	}
	// Only beta's extension rewrites; alpha's token URL stays.
	if a.Auth.TokenURL != "https://id.example.com/token" || b.Auth.TokenURL != sb.URL()+"/b/token" {
		t.Errorf("token URLs %q %q", a.Auth.TokenURL, b.Auth.TokenURL)
	}
	for url, want := range map[string]string{sb.URL() + "/a/v1/x": "alpha /v1/x", sb.URL() + "/b/y": "beta /y"} {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != want {
			t.Errorf("GET %s: %q, want %q", url, body, want)
		}
	}
	m := sb.ServerURL()
	if got := m("https://10.0.0.5:7001"); got != sb.URL()+"/farm/10.0.0.5:7001" {
		t.Errorf("routed server URL %q", got)
	}
	if got := m("http://10.0.0.5:7001"); got != "http://10.0.0.5:7001" {
		t.Errorf("a URL no extension routes became %q", got)
	}
	// The same rewriting without a running sandbox (provision apply --sandbox-url).
	p2 := testPlan()
	Rewrite(p2, "http://127.0.0.1:8700/", ext...)
	if got := p2.Endpoints["b"].Auth.TokenURL; got != "http://127.0.0.1:8700/b/token" {
		t.Errorf("Rewrite: token URL %q", got)
	}
	if got := ServerURL("http://127.0.0.1:8700/", ext...)("https://h:1"); got != "http://127.0.0.1:8700/farm/h:1" {
		t.Errorf("ServerURL: %q", got)
	}
}

func TestSandbox_RefusesUnservedAndTwiceServedKinds(t *testing.T) {
	if _, err := Start("127.0.0.1:0", Options{}, plainExt{"alpha"}, routingExt{plainExt{"alpha"}}); err == nil || !strings.Contains(err.Error(), `two extensions serve endpoint kind "alpha"`) {
		t.Fatalf("Start with a kind served twice: %v", err)
	}
	sb, err := Start("127.0.0.1:0", Options{}, plainExt{"alpha"})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	if err := sb.Attach(testPlan()); err == nil || !strings.Contains(err.Error(), `endpoint b: the sandbox has no fake for kind "beta"`) {
		t.Fatalf("Attach with an unserved kind: %v", err)
	}
}
