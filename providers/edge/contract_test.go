package edge

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"

	"provision/providers/edge/edgefake"
	"provision/providers/providertest"
)

// edgeContractPlan is testPlan served at the suite's URL (every section, so that
// every create route of the provider is used) with a second registry that no
// application uses (the application, which cannot be deleted, keeps its own).
func edgeContractPlan(base string) string {
	p := strings.Replace(testPlan, `vars: {edge_url: "http://127.0.0.1:1"}`, fmt.Sprintf("vars: {edge_url: %q}", base), 1)
	return strings.Replace(p, "edge_registries:\n  items:\n",
		"edge_registries:\n  items:\n    - {name: mirror-registry, endpoint: edge, address: mirror.example.com, user: puller, password: \"${env.EDGE_REGISTRY_PASSWORD}\"}\n", 1)
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
		Deletes: []providertest.Route{
			{Method: http.MethodDelete, Path: "/v1/admin/user/"},
			{Method: http.MethodDelete, Path: "/v1/cluster/label"},
			{Method: http.MethodDelete, Path: "/v1/node/label"},
			{Method: http.MethodDelete, Path: "/v1/repository/project"},
			{Method: http.MethodDelete, Path: "/v1/repository/third"},
		},
		// The seed (edge-vsm-r3-api.txt) documents no delete call for businesses,
		// repository users and applications (see Kind.Delete).
		CannotDelete: []string{BusinessesSection, RepoUsersSection, AppsSection},
		New: func(t *testing.T) *providertest.Fake {
			f := edgefake.New(edgefake.Options{AdminPassword: adminPW})
			return &providertest.Fake{
				Handler:  f,
				Injector: f.Faults,
				Plan:     edgeContractPlan,
				Check:    func() error { return edgeContractCheck(f) },
				Snapshot: func() []string { return edgeObjects(f) },
			}
		},
	})
}

// edgeObjects lists the fake's objects by natural key; namespaces (ns<business
// id>) are counted per cluster, applications named without their namespace, as
// ids differ between fakes.
func edgeObjects(f *edgefake.Server) []string {
	snap := f.Snapshot()
	var out []string
	for _, u := range snap.Users {
		out = append(out, fmt.Sprintf("user %s status %d admin %v", u.Name, u.Status, u.IsAdmin))
	}
	for _, b := range snap.Businesses {
		out = append(out, fmt.Sprintf("business %s status %d", b.Name, b.Status))
	}
	for _, c := range snap.Clusters {
		out = append(out, fmt.Sprintf("cluster %s labels %v namespaces %d", c.Name, c.Labels, len(c.Namespaces)))
		for _, n := range c.Nodes {
			out = append(out, fmt.Sprintf("node %s/%s labels %v", c.Name, n.Name, n.Labels))
		}
	}
	for _, u := range snap.RepoUsers {
		out = append(out, "repository user "+u)
	}
	for _, p := range snap.Projects {
		out = append(out, "project "+p.Name)
	}
	for _, g := range snap.Registries {
		out = append(out, fmt.Sprintf("registry %s user %s", g.Address, g.User))
	}
	for _, a := range snap.Apps {
		out = append(out, fmt.Sprintf("app %s %s:%s", a.Name, a.Image, a.Version))
	}
	sort.Strings(out)
	return out
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
		"repository user ci-pusher", "project retail-apps", "registry registry.example.com", "registry mirror.example.com", "app people-counter"} {
		if !have[want] {
			errs = append(errs, fmt.Errorf("missing: %s", want))
		}
	}
	return errors.Join(errs...)
}
