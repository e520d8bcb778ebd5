package edge

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"provision/providers/edge/edgefake"
	"provision/providers/providertest"
)

// edgeContractPlan is testPlan served at the suite's URL: every section, so that
// every create route of the provider is used.
func edgeContractPlan(base string) string {
	return strings.Replace(testPlan, `vars: {edge_url: "http://127.0.0.1:1"}`, fmt.Sprintf("vars: {edge_url: %q}", base), 1)
}

func TestEdge_Contract(t *testing.T) {
	providertest.Run(t, providertest.Target{
		Kinds:   Kinds(),
		Secrets: secrets,
		Creates: []providertest.Route{
			{Method: http.MethodPost, Path: "/v1/user"},
			{Method: http.MethodPost, Path: "/v1/admin/user"},
			{Method: http.MethodPost, Path: "/v1/business"},
			{Method: http.MethodPost, Path: "/v1/cluster/label"},
			{Method: http.MethodPost, Path: "/v1/node/label"},
			{Method: http.MethodPost, Path: "/v1/repository/user"},
			{Method: http.MethodPost, Path: "/v1/repository/project"},
			{Method: http.MethodPost, Path: "/v1/repository/third"},
			{Method: http.MethodPost, Path: "/v1/app"},
		},
		Auth: []providertest.Route{{Method: http.MethodPost, Path: "/v1/authorization"}, {Method: http.MethodPut, Path: "/v1/authorization"}},
		New: func(t *testing.T) *providertest.Fake {
			f := edgefake.New(edgefake.Options{AdminPassword: adminPW})
			return &providertest.Fake{
				Handler:  f,
				Injector: f.Faults,
				Plan:     edgeContractPlan,
				Check:    func() error { return edgeContractCheck(f) },
			}
		},
	})
}

// edgeContractCheck reads the fake's state: no duplicate, and every object of
// testPlan there (users approved, the business audited with its namespaces).
func edgeContractCheck(f *edgefake.Server) error {
	var errs []error
	if d := f.Check(); len(d) > 0 {
		errs = append(errs, fmt.Errorf("duplicates: %v", d))
	}
	snap := f.Snapshot()
	have := map[string]bool{}
	for _, u := range snap.Users {
		if u.Status == edgefake.Approved {
			have["user "+u.Name] = true
		}
	}
	for _, b := range snap.Businesses {
		if b.Status == 1 {
			have["business "+b.Name] = true
		}
	}
	for _, c := range snap.Clusters {
		for _, l := range c.Labels {
			have["cluster label "+c.Name+":"+l] = true
		}
		for _, n := range c.Nodes {
			for _, l := range n.Labels {
				have["node label "+c.Name+"/"+n.Name+":"+l] = true
			}
		}
	}
	for _, u := range snap.RepoUsers {
		have["repository user "+u] = true
	}
	for _, p := range snap.Projects {
		have["project "+p.Name] = true
	}
	for _, g := range snap.Registries {
		have["registry "+g.Address] = true
	}
	for _, a := range snap.Apps {
		have["app "+a.Name] = true
	}
	for _, want := range []string{"user admin", "user retail-admin", "user retail-operator", "business retail",
		"cluster label cluster-a:retail-eu", "cluster label cluster-b:retail-eu",
		"node label cluster-a/edge-a1:camera-gateway", "node label cluster-a/edge-a2:camera-gateway",
		"repository user ci-pusher", "project retail-apps", "registry registry.example.com", "app people-counter"} {
		if !have[want] {
			errs = append(errs, fmt.Errorf("missing: %s", want))
		}
	}
	return errors.Join(errs...)
}
