package nxfake

import "testing"

func TestExtension_RoutesServerURLsToTheFarm(t *testing.T) {
	e := &Extension{}
	for raw, want := range map[string]string{
		"https://10.0.0.5:7001":      "http://127.0.0.1:8700/nx-servers/10.0.0.5:7001",
		"https://10.0.0.5:7001/":     "http://127.0.0.1:8700/nx-servers/10.0.0.5:7001",
		"https://nx.local:7001/pre/": "http://127.0.0.1:8700/nx-servers/nx.local:7001/pre",
	} {
		if got, ok := e.ServerURL("http://127.0.0.1:8700/", raw); !ok || got != want {
			t.Errorf("ServerURL(%q) = %q, %v; want %q", raw, got, ok, want)
		}
	}
	if got, ok := e.ServerURL("http://127.0.0.1:8700", "not a url"); ok || got != "not a url" {
		t.Errorf("a URL without a host: %q, %v", got, ok)
	}
}
