package nx

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"

	"provision/providers/nx/nxfake"
	"provision/providers/providertest"
)

// contractPlan has a factory-new personal store (setup), a set-up one (cloud/bind)
// and an organization store on a 6.1 server (partners create, setup with
// organizationId), each with shares: every create route of the provider is used.
const contractPlan = `version: 1
name: nx-contract
endpoints:
  nxcloud: {kind: nx-cloud, url: "%s", auth: {username: ops@example.com, password: "${env.NX_CLOUD_PASSWORD}"}}
nx_systems:
  defaults:
    cloud: nxcloud
    admin: {password: admin}
    local_password: ${env.NX_ADMIN_PASSWORD}
    settings: {statisticsAllowed: false}
  items:
    - name: store-new
      url: https://10.9.0.1:7001
      users: [{email: a@example.com, role: viewer}, {email: b@example.com, role: advancedViewer}]
    - name: store-existing
      url: https://10.9.0.2:7001
      users: [{email: a@example.com, role: viewer}]
    - name: store-org
      organization: org-7
      url: https://10.9.0.3:7001
      users: [{email: c@example.com, role: liveViewer}]
`

// contractShares are the shares the plan asks for: system name -> emails.
var contractShares = map[string][]string{"store-new": {"a@example.com", "b@example.com"}, "store-existing": {"a@example.com"}, "store-org": {"c@example.com"}}

func TestNx_Contract(t *testing.T) {
	providertest.Run(t, providertest.Target{
		Kinds:   Kinds(),
		Secrets: secrets,
		Creates: []providertest.Route{
			{Method: http.MethodPost, Path: "/cdb/systems/bind"},
			{Method: http.MethodPost, Path: "/partners/api/v3/cloud_systems/"},
			{Method: http.MethodPost, Path: "/rest/v3/system/setup"},
			{Method: http.MethodPost, Path: "/rest/v3/system/cloud/bind"},
		},
		Auth: []providertest.Route{{Method: http.MethodPost, Path: "/cdb/oauth2/token"}, {Method: http.MethodPost, Path: "/rest/v3/login/sessions"}},
		Deletes: []providertest.Route{
			{Method: http.MethodPost, Path: "/users"}, // a share removed: the upsert with accessRole none
			{Method: http.MethodPost, Path: "/rest/v3/system/cloud/unbind"},
			// The fake's unbind removes the cloud system (an inference, nxfake
			// farm.go), so in this plan the DELETE meets an "already gone" 403.
			{Method: http.MethodDelete, Path: "/cdb/systems/"},
		},
		New: func(t *testing.T) *providertest.Fake {
			w := nxfake.New(nxfake.Options{Accounts: map[string]string{account: cloudPW}, Organizations: []string{"org-7"},
				PreSetUp: []string{"10.9.0.2:7001"}, ServerAdminPassword: serverPW, PageSize: 2})
			w.SetServerVersion("10.9.0.3:7001", "6.1.0.40000")
			return &providertest.Fake{
				Handler:   w,
				Plan:      func(base string) string { return fmt.Sprintf(contractPlan, base) },
				ServerURL: w.ServerURLFor,
				Injector:  w.Faults,
				Check:     func() error { return contractCheck(w) },
				Snapshot:  func() []string { return contractObjects(w) },
			}
		},
	})
}

// contractObjects lists the cloud systems, shares and server bindings by name (a
// server stays set up after a destroy: setup has no undo, so it is not listed).
func contractObjects(w *nxfake.World) []string {
	snap := w.Snapshot()
	names := map[string]string{}
	var out []string
	for _, cs := range snap.Systems {
		names[cs.ID] = cs.Name
		out = append(out, fmt.Sprintf("system %s %s organization %q server %q", cs.Name, cs.Status, cs.Organization, cs.Server))
		for _, sh := range snap.Shares[cs.ID] {
			out = append(out, fmt.Sprintf("share %s %s %s", cs.Name, sh.Email, sh.AccessRole))
		}
	}
	for _, srv := range snap.Servers {
		if srv.CloudID != "" {
			out = append(out, fmt.Sprintf("server %s bound to %q", srv.Key, names[srv.CloudID]))
		}
	}
	sort.Strings(out)
	return out
}

// contractCheck reads the fake's state: no duplicate, no orphan, every store bound
// to its server, every share there once.
func contractCheck(w *nxfake.World) error {
	want := map[string]string{"store-new": "10.9.0.1:7001", "store-existing": "10.9.0.2:7001", "store-org": "10.9.0.3:7001"}
	var errs []error
	dups, orphans, missing := w.Check(want)
	if len(dups)+len(orphans)+len(missing) > 0 {
		errs = append(errs, fmt.Errorf("duplicates %v, orphans %v, missing %v", dups, orphans, missing))
	}
	snap := w.Snapshot()
	for _, cs := range snap.Systems {
		var got []string
		for _, sh := range snap.Shares[cs.ID] {
			got = append(got, sh.Email)
		}
		if strings.Join(got, ",") != strings.Join(contractShares[cs.Name], ",") {
			errs = append(errs, fmt.Errorf("%s is shared with %v, want %v", cs.Name, got, contractShares[cs.Name]))
		}
	}
	if srv, _ := snap.Server("10.9.0.3:7001"); srv.CloudID != "" && srv.CloudOrganization != "org-7" {
		errs = append(errs, fmt.Errorf("the 6.1 server of store-org got organizationId %q", srv.CloudOrganization))
	}
	return errors.Join(errs...)
}
