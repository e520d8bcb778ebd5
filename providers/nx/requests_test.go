package nx

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"provision/providers/nx/nxfake"
)

// storesPlan is n factory-new stores with k shares each (the factory admin
// password first, the new one set by the setup).
func storesPlan(n, k int) string {
	var b strings.Builder
	b.WriteString(`version: 1
name: nx-test
vars: {cloud_url: "http://127.0.0.1:1"}
endpoints:
  nxcloud: {kind: nx-cloud, url: "${var.cloud_url}", auth: {username: ops@example.com, password: "${env.NX_CLOUD_PASSWORD}"}}
nx_systems:
  defaults:
    cloud: nxcloud
    admin: {password: admin}
    local_password: ${env.NX_ADMIN_PASSWORD}
    settings: {statisticsAllowed: false}
  items:
`)
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "    - name: store-%d\n      url: https://10.0.1.%d:7001\n      users:\n", i, i)
		for j := 1; j <= k; j++ {
			fmt.Fprintf(&b, "        - {email: user%d@example.com, role: viewer}\n", j)
		}
	}
	return b.String()
}

// TestNx_RequestsPerStore_FactoryNewCosts4PlusK: a factory-new store with k shares
// costs bind, login, info, setup and k share writes (no share list: the system is
// new; no second info read), plus one token for the whole run; a rerun of the done
// plan sends nothing.
func TestNx_RequestsPerStore_FactoryNewCosts4PlusK(t *testing.T) {
	const stores, k = 4, 3
	e := newEnv(t, nxfake.Options{LogRequests: true})
	text := storesPlan(stores, k)
	statePath := filepath.Join(e.dir, "state.db")
	mustOK(t, e.runPlan(text, statePath, "state-key-for-tests"))
	reqs := e.world.Requests()
	perStore := map[string]int{}
	tokens := 0
	for _, r := range reqs {
		switch {
		case r == "POST /cdb/oauth2/token":
			tokens++
		case strings.Contains(r, "/servers/10.0.1."):
			key := strings.SplitN(strings.SplitN(r, "/servers/", 2)[1], "/", 2)[0]
			perStore[key]++
		}
	}
	if tokens != 1 {
		t.Errorf("%d token requests, want 1", tokens)
	}
	for i := 1; i <= stores; i++ {
		if got := perStore[fmt.Sprintf("10.0.1.%d:7001", i)]; got != 3 {
			t.Errorf("store %d: %d server requests, want 3 (login, info, setup)", i, got)
		}
	}
	want := stores*(4+k) + 1
	if len(reqs) != want {
		t.Errorf("%d requests, want %d (%d stores x (4 + %d shares) + 1 token):\n%s", len(reqs), want, stores, k, strings.Join(reqs, "\n"))
	}
	for _, r := range reqs {
		if strings.HasPrefix(r, "GET /cdb/") || strings.HasPrefix(r, "GET /partners/") {
			t.Errorf("a read the run did not need: %s", r)
		}
	}
	noDamage(t, e.world, func() map[string]string {
		m := map[string]string{}
		for i := 1; i <= stores; i++ {
			m[fmt.Sprintf("store-%d", i)] = fmt.Sprintf("10.0.1.%d:7001", i)
		}
		return m
	}())
	e.world.ResetRequests()
	res := e.runPlan(text, statePath, "state-key-for-tests")
	mustOK(t, res)
	if r := e.world.Requests(); len(r) != 0 || res.UpToDate != stores*(1+k) {
		t.Errorf("rerun of the done plan: %d requests (%v), %d up to date", len(r), r, res.UpToDate)
	}
}

// TestNx_Requests_ShareListReadOncePerSystem: on a resume (a new process) of a
// system bound earlier, its k share tasks read its share list once between them.
func TestNx_Requests_ShareListReadOncePerSystem(t *testing.T) {
	const k = 5
	e := newEnv(t, nxfake.Options{LogRequests: true})
	text := storesPlan(1, k)
	tasks := e.build(text)
	if _, _, err := apply(t, tasks["store-1"], call{}); err != nil {
		t.Fatal(err)
	}
	// A fresh process (its own clients, a new state file): nothing cached; the
	// runner applies the shares concurrently.
	statePath := filepath.Join(e.dir, "state.db")
	e.world.ResetRequests()
	mustOK(t, e.runPlan(text, statePath, "state-key-for-tests"))
	lists, writes := 0, 0
	for _, r := range e.world.Requests() {
		switch {
		case strings.HasPrefix(r, "GET /cdb/systems/") && strings.HasSuffix(r, "/users"):
			lists++
		case strings.HasPrefix(r, "POST /cdb/systems/") && strings.HasSuffix(r, "/users"):
			writes++
		}
	}
	if lists != 1 || writes != k {
		t.Errorf("%d share list reads (want 1), %d share writes (want %d): %v", lists, writes, k, e.world.Requests())
	}
}

// TestNx_Requests_RetryAfterARefusedBindNeedsNoLookup: a bind answered 429 did not
// happen, so its retry binds without first listing the account's systems; a bind
// whose answer was lost is looked up before the retry.
func TestNx_Requests_RetryAfterARefusedBindNeedsNoLookup(t *testing.T) {
	for _, tc := range []struct {
		name      string
		fail      nxfake.Failure
		wantLists int
	}{
		{"429", nxfake.Failure{Method: "POST", Path: "/cdb/systems/bind", Status: 429, Code: "tooManyRequests", Text: "slow down"}, 0},
		{"lost answer", nxfake.Failure{Method: "POST", Path: "/cdb/systems/bind", Lose: true}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nxfake.Options{LogRequests: true})
			text := storesPlan(1, 0)
			e.world.FailNext(tc.fail)
			mustOK(t, e.runPlan(text, filepath.Join(e.dir, "state.db"), "state-key-for-tests"))
			lists := 0
			for _, r := range e.world.Requests() {
				if r == "GET /cdb/systems" {
					lists++
				}
			}
			if lists != tc.wantLists {
				t.Errorf("%d system list reads, want %d: %v", lists, tc.wantLists, e.world.Requests())
			}
			noDamage(t, e.world, map[string]string{"store-1": "10.0.1.1:7001"})
		})
	}
}
