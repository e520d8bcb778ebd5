package openvcloud

import (
	"fmt"
	"net/http"
	"sort"
	"testing"

	"provision/providers/openvcloud/ovcfake"
	"provision/providers/providertest"
)

// ovcContractSecret is the ItsYou.online client secret of the contract plan: a
// canary that must never leak.
const ovcContractSecret = "canary-ovc-secret-1"

// ovcContractPlan creates one space with the async form (task GUID, system/task/get)
// and one with the direct form (the id as the answer), so that both ways a create
// answers are lost once.
const ovcContractPlan = `version: 1
name: ovc-contract
endpoints:
  ovc: {kind: openvcloud, url: "%[1]s", auth: {client_id: contract, client_secret: "${env.OVC_CLIENT_SECRET}", token_url: "%[1]s/v1/oauth/access_token"}}
openvcloud_cloudspaces:
  defaults: {endpoint: ovc, account_id: 42, location: be-gen-1}
  items:
    - {name: space-async, async: true}
    - {name: space-sync, async: false, max_cpu_capacity: 8}
`

func TestOpenvCloud_Contract(t *testing.T) {
	providertest.Run(t, providertest.Target{
		Kinds:   Kinds(),
		Secrets: map[string]string{"OVC_CLIENT_SECRET": ovcContractSecret},
		Creates: []providertest.Route{{Method: http.MethodPost, Path: "/cloudapi/cloudspaces/create"}},
		Auth:    []providertest.Route{{Method: http.MethodPost, Path: "/v1/oauth/access_token"}},
		Deletes: []providertest.Route{{Method: http.MethodPost, Path: "/cloudapi/cloudspaces/delete"}},
		// Every OpenvCloud call is a POST: these only read.
		Reads: []providertest.Route{{Path: "/cloudspaces/list"}, {Path: "/cloudspaces/get"},
			{Path: "/accounts/list"}, {Path: "/system/task/get"}},
		New: func(t *testing.T) *providertest.Fake {
			o := ovcfake.DemoOptions()
			o.Apps = map[string]string{"contract": ovcContractSecret}
			o.AppUsers = map[string]string{"contract": "jdoe"}
			f := ovcfake.New(o)
			return &providertest.Fake{
				Handler:  f,
				Injector: f.Faults,
				Plan:     func(base string) string { return fmt.Sprintf(ovcContractPlan, base) },
				Check:    func() error { return ovcContractCheck(f) },
				Snapshot: func() []string { return ovcLive(f) },
				Settle:   f.Settle,
			}
		},
	})
}

// ovcLive lists the spaces that are neither DELETED nor DESTROYED (what a delete
// removes), by account and name.
func ovcLive(f *ovcfake.Server) []string {
	var out []string
	for _, sp := range f.Snapshot().Spaces {
		if !gone(sp.Status) {
			out = append(out, fmt.Sprintf("space %d/%s", sp.AccountID, sp.Name))
		}
	}
	sort.Strings(out)
	return out
}

// ovcContractCheck reads the fake's state: no duplicate, and both spaces live.
func ovcContractCheck(f *ovcfake.Server) error {
	if err := f.Check(); err != nil {
		return err
	}
	got := map[string]int{}
	for _, sp := range f.Snapshot().Spaces {
		if !gone(sp.Status) {
			got[sp.Name]++
		}
	}
	for _, name := range []string{"space-async", "space-sync"} {
		if got[name] != 1 {
			return fmt.Errorf("%d live spaces named %s, want 1 (%v)", got[name], name, got)
		}
	}
	if len(got) != 2 {
		return fmt.Errorf("live spaces %v, want space-async and space-sync", got)
	}
	return nil
}
