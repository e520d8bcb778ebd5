package nxfake

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	acct   = "ops@example.com"
	acctPW = "cloud-pw-1"
)

type fx struct {
	t  *testing.T
	w  *World
	ts *httptest.Server
}

func newFx(t *testing.T, o Options) *fx {
	t.Helper()
	if o.Accounts == nil {
		o.Accounts = map[string]string{acct: acctPW}
	}
	w := New(o)
	ts := httptest.NewServer(w)
	t.Cleanup(ts.Close)
	return &fx{t: t, w: w, ts: ts}
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) obj(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("answer %d %q is not an object: %v", a.status, a.body, err)
	}
	return m
}

func (f *fx) do(method, path, token string, body any) answer {
	f.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, f.ts.URL+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

func (f *fx) token() string {
	f.t.Helper()
	a := f.do("POST", "/cdb/oauth2/token", "", map[string]string{"grant_type": "password", "response_type": "token", "client_id": "3rdParty", "username": acct, "password": acctPW})
	if a.status != 200 {
		f.t.Fatalf("token: %d %s", a.status, a.body)
	}
	return a.obj(f.t)["access_token"].(string)
}

func (f *fx) bind(tok, name string) (id, key string) {
	f.t.Helper()
	a := f.do("POST", "/cdb/systems/bind", tok, map[string]string{"name": name, "customization": "default"})
	if a.status != 200 {
		f.t.Fatalf("bind: %d %s", a.status, a.body)
	}
	m := a.obj(f.t)
	return m["id"].(string), m["authKey"].(string)
}

func (f *fx) login(server, password string) string {
	f.t.Helper()
	a := f.do("POST", ServerPath("https://"+server)+"/rest/v3/login/sessions", "", map[string]string{"username": "admin", "password": password})
	if a.status != 200 {
		f.t.Fatalf("login: %d %s", a.status, a.body)
	}
	m := a.obj(f.t)
	if r, ok := m["reply"].(map[string]any); ok {
		m = r
	}
	return m["token"].(string)
}

func TestWorld_Token_GrantsAndFlexibleExpiry(t *testing.T) {
	f := newFx(t, Options{})
	kinds := map[string]bool{}
	var refresh string
	for i := 0; i < 2; i++ {
		a := f.do("POST", "/cdb/oauth2/token", "", map[string]string{"grant_type": "password", "username": acct, "password": acctPW})
		m := a.obj(t)
		if !strings.HasPrefix(m["access_token"].(string), "nxcdb-") || m["token_type"] != "bearer" {
			t.Fatalf("token answer %v", m)
		}
		switch m["expires_in"].(type) {
		case string:
			kinds["string"] = true
		case float64:
			kinds["number"] = true
		}
		refresh = m["refresh_token"].(string)
	}
	if !kinds["string"] || !kinds["number"] {
		t.Errorf("expires_in forms seen: %v, want both", kinds)
	}
	if a := f.do("POST", "/cdb/oauth2/token", "", map[string]string{"grant_type": "refresh_token", "refresh_token": refresh}); a.status != 200 {
		t.Fatalf("refresh: %d %s", a.status, a.body)
	}
	a := f.do("POST", "/cdb/oauth2/token", "", map[string]string{"grant_type": "refresh_token", "refresh_token": refresh})
	if a.status != 401 || a.obj(t)["resultCode"] != "notAuthorized" {
		t.Errorf("reused refresh token: %d %s", a.status, a.body)
	}
	a = f.do("POST", "/cdb/oauth2/token", "", map[string]string{"grant_type": "password", "username": acct, "password": "wrong"})
	if m := a.obj(t); a.status != 401 || m["resultCode"] != "badUsername" || m["errorClass"] != "unauthorized" {
		t.Errorf("wrong password: %d %s", a.status, a.body)
	}
}

// manualClock is a fake's clock that the test moves by hand. Safe for concurrent use.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func newManualClock() *manualClock {
	return &manualClock{t: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
}

func (c *manualClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestWorld_Cloud_ExpiredTokenIsRefused(t *testing.T) {
	clk := newManualClock()
	f := newFx(t, Options{TokenLifetime: 300 * time.Millisecond, Now: clk.now})
	tok := f.token()
	clk.add(299 * time.Millisecond)
	if a := f.do("GET", "/cdb/systems", tok, nil); a.status != 200 {
		t.Fatalf("fresh token: %d", a.status)
	}
	clk.add(100 * time.Millisecond)
	if a := f.do("GET", "/cdb/systems", tok, nil); a.status != 401 || a.obj(t)["resultCode"] != "notAuthorized" {
		t.Fatalf("expired token: %d %s", a.status, a.body)
	}
}

func TestWorld_Bind_CreatesNewSystemEveryCall(t *testing.T) {
	for _, bare := range []bool{false, true} {
		f := newFx(t, Options{BareArrayList: bare})
		tok := f.token()
		id1, _ := f.bind(tok, "store")
		id2, _ := f.bind(tok, "store")
		if id1 == id2 {
			t.Fatal("a second bind returned the same system")
		}
		a := f.do("GET", "/cdb/systems", tok, nil)
		var list []map[string]any
		if bare {
			_ = json.Unmarshal(a.body, &list)
		} else {
			var w struct{ Systems []map[string]any }
			_ = json.Unmarshal(a.body, &w)
			list = w.Systems
		}
		if len(list) != 2 || list[0]["status"] != "notActivated" || list[0]["authKey"] != nil {
			t.Fatalf("list (bare=%v): %s", bare, a.body)
		}
		dups, orphans, missing := f.w.Check(map[string]string{"store": "10.0.0.1:7001"})
		if len(dups) != 1 || len(orphans) != 2 || len(missing) != 1 {
			t.Errorf("check: dups %v orphans %v missing %v", dups, orphans, missing)
		}
		if a := f.do("DELETE", "/cdb/systems/"+id1, tok, nil); a.status != 204 {
			t.Fatalf("delete: %d", a.status)
		}
		// A removed system answers 403 to GET and DELETE (nx_system_tests remove_system);
		// an id the cloud never knew answers 404.
		if a := f.do("GET", "/cdb/systems/"+id1, tok, nil); a.status != 403 {
			t.Fatalf("get deleted: %d %s", a.status, a.body)
		}
		if a := f.do("DELETE", "/cdb/systems/"+id1, tok, nil); a.status != 403 {
			t.Fatalf("delete deleted: %d %s", a.status, a.body)
		}
		if a := f.do("GET", "/cdb/systems/00000000-0000-4000-8000-00000000dead", tok, nil); a.status != 404 || a.obj(t)["resultCode"] != "notFound" {
			t.Fatalf("get unknown: %d %s", a.status, a.body)
		}
		if c := f.w.Snapshot().Counters; c.Binds != 2 || c.Deletes != 1 {
			t.Errorf("counters %+v", c)
		}
	}
}

func TestWorld_Bind_FallbackPathsAndOrganizations(t *testing.T) {
	f := newFx(t, Options{FallbackPaths: true, Organizations: []string{"org-1"}})
	tok := f.token()
	if a := f.do("POST", "/cdb/systems/bind", tok, map[string]string{"name": "x"}); a.status != 404 {
		t.Fatalf("plural bind with FallbackPaths: %d", a.status)
	}
	if a := f.do("POST", "/cdb/system/bind", tok, map[string]string{"name": "x"}); a.status != 200 {
		t.Fatalf("singular bind: %d", a.status)
	}
	if a := f.do("POST", "/partners/api/v3/cloud_systems/", tok, map[string]string{"name": "y", "organization": "org-2"}); a.status != 403 {
		t.Fatalf("unknown org: %d %s", a.status, a.body)
	}
	a := f.do("POST", "/partners/api/v3/cloud_systems/", tok, map[string]string{"name": "y", "customization": "default", "organization": "org-1"})
	if a.status != 201 || a.obj(t)["authKey"] == "" {
		t.Fatalf("org bind: %d %s", a.status, a.body)
	}
	a = f.do("GET", "/partners/api/v2/organizations/org-1/cloud_systems/", tok, nil)
	var l struct{ Results []map[string]any }
	_ = json.Unmarshal(a.body, &l)
	if len(l.Results) != 1 || l.Results[0]["name"] != "y" {
		t.Fatalf("org list: %s", a.body)
	}
	if a := f.do("POST", "/cdb/systems/bind", tok, map[string]string{"customization": "default"}); a.status != 404 {
		t.Fatalf("missing name: %d", a.status)
	}
	if a := f.do("POST", "/cdb/system/bind", tok, map[string]string{"customization": "default"}); a.status != 400 || a.obj(t)["errorClass"] != "badRequest" {
		t.Fatalf("missing name: %d %s", a.status, a.body)
	}
}

func TestWorld_Shares_UpsertAndRemove(t *testing.T) {
	f := newFx(t, Options{})
	tok := f.token()
	id, _ := f.bind(tok, "s")
	path := "/cdb/systems/" + id + "/users"
	for _, tc := range []struct {
		body   map[string]any
		status int
	}{
		{map[string]any{"accountEmail": "a@example.com", "accessRole": "viewer"}, 200},
		{map[string]any{"accountEmail": "A@example.com", "accessRole": "advancedViewer", "isEnabled": true}, 200},
		{map[string]any{"accountEmail": "b@example.com", "accessRole": "watcher"}, 400},
		{map[string]any{"accountEmail": "not-an-address", "accessRole": "viewer"}, 400},
		{map[string]any{"accessRole": "viewer"}, 400},
		{map[string]any{"accountEmail": acct, "accessRole": "viewer"}, 403},
	} {
		if a := f.do("POST", path, tok, tc.body); a.status != tc.status {
			t.Errorf("share %v: %d %s, want %d", tc.body, a.status, a.body, tc.status)
		}
	}
	if a := f.do("POST", "/cdb/v0/systems/"+id+"/users", tok, map[string]any{"accountEmail": "c@example.com", "accessRole": "viewer"}); a.status != 200 {
		t.Fatalf("v0 share: %d", a.status)
	}
	snap := f.w.Snapshot()
	if len(snap.Shares[id]) != 2 || snap.Shares[id][0].AccessRole != "advancedViewer" || snap.Counters.SharesCreated != 2 || snap.Counters.SharesUpdated != 1 {
		t.Fatalf("shares %+v counters %+v", snap.Shares[id], snap.Counters)
	}
	if a := f.do("POST", path, tok, map[string]any{"accountEmail": "a@example.com", "accessRole": "none"}); a.status != 200 {
		t.Fatal(a.status)
	}
	if a := f.do("DELETE", path+"/c@example.com", tok, nil); a.status != 204 {
		t.Fatal(a.status)
	}
	if a := f.do("DELETE", path+"/c@example.com", tok, nil); a.status != 404 {
		t.Fatal(a.status)
	}
	// Both list shapes appear, the owner first.
	for i := 0; i < 2; i++ {
		a := f.do("GET", path, tok, nil)
		if !bytes.Contains(a.body, []byte(`"owner"`)) || bytes.Contains(a.body, []byte("a@example.com")) {
			t.Errorf("list: %s", a.body)
		}
	}
	if a := f.do("GET", "/cdb/systems/"+id+"/users", "", nil); a.status != 401 {
		t.Errorf("no token: %d", a.status)
	}
}

func TestWorld_Farm_SetupBindsCloudSystem(t *testing.T) {
	f := newFx(t, Options{})
	tok := f.token()
	id, key := f.bind(tok, "store-1")
	srv := "10.0.0.1:7001"
	base := ServerPath("https://" + srv)
	if base != "/servers/10.0.0.1:7001" || f.w.ServerURLFor("http://h:1/", "https://10.0.0.1:7001") != "http://h:1/servers/10.0.0.1:7001" {
		t.Fatalf("paths: %s", base)
	}
	if a := f.do("POST", base+"/rest/v3/login/sessions", "", map[string]string{"username": "admin", "password": "nope"}); a.status != 401 {
		t.Fatalf("wrong password: %d", a.status)
	}
	s := f.login(srv, "admin")
	info := f.do("GET", base+"/rest/v3/system/info", s, nil).obj(t)
	if info["localId"] != "{00000000-0000-0000-0000-000000000000}" || info["cloudId"] != nil {
		t.Fatalf("factory-new info %v", info)
	}
	// Wrong key: refused, nothing bound.
	a := f.do("POST", base+"/rest/v3/system/setup", s, map[string]any{"name": "store-1", "cloud": map[string]string{"systemId": id, "authKey": "wrong", "owner": acct}})
	if a.status != 422 || a.obj(t)["errorId"] != "cantProcessRequest" {
		t.Fatalf("wrong key: %d %s", a.status, a.body)
	}
	a = f.do("POST", base+"/rest/v3/system/setup", s, map[string]any{"name": "store-1", "settings": map[string]any{"statisticsAllowed": false},
		"local": map[string]string{"password": "NewPassw0rd"}, "cloud": map[string]string{"systemId": id, "authKey": key, "owner": acct}})
	if a.status != 200 {
		t.Fatalf("setup: %d %s", a.status, a.body)
	}
	if a := f.do("POST", base+"/rest/v3/system/setup", s, map[string]any{"name": "again", "local": map[string]string{"password": "NewPassw0rd"}}); a.status != 403 || a.obj(t)["errorId"] != "forbidden" {
		t.Fatalf("second setup: %d %s", a.status, a.body)
	}
	info = f.do("GET", base+"/rest/v3/system/info", s, nil).obj(t)
	if info["cloudId"] != id {
		t.Fatalf("info after setup %v", info)
	}
	if dups, orphans, missing := f.w.Check(map[string]string{"store-1": srv}); len(dups)+len(orphans)+len(missing) != 0 {
		t.Fatalf("check: %v %v %v", dups, orphans, missing)
	}
	// The new password is now the one that works.
	if a := f.do("POST", base+"/rest/v3/login/sessions", "", map[string]string{"username": "admin", "password": "admin"}); a.status != 401 {
		t.Fatalf("old password still works: %d", a.status)
	}
	f.login(srv, "NewPassw0rd")
	// Another cloud system cannot take this server.
	id2, key2 := f.bind(tok, "other")
	a = f.do("POST", base+"/rest/v3/system/cloud/bind", s, map[string]string{"systemId": id2, "authKey": key2, "owner": acct})
	if a.status != 422 || !strings.Contains(a.obj(t)["errorString"].(string), "already bound") {
		t.Fatalf("rebind: %d %s", a.status, a.body)
	}
	// Unbinding removes the system from the cloud.
	if a := f.do("POST", base+"/rest/v3/system/cloud/unbind", s, map[string]string{"password": "NewPassw0rd"}); a.status != 204 {
		t.Fatalf("unbind: %d %s", a.status, a.body)
	}
	if _, ok := f.w.Snapshot().System(id); ok {
		t.Error("unbound system is still in the cloud")
	}
}

func TestWorld_Farm_ExistingServerCloudBind(t *testing.T) {
	f := newFx(t, Options{PreSetUp: []string{"10.0.0.2:7001"}, ServerAdminPassword: "Existing123", WrapReplies: true})
	tok := f.token()
	id, key := f.bind(tok, "existing")
	base := ServerPath("https://10.0.0.2:7001")
	s := f.login("10.0.0.2:7001", "Existing123")
	a := f.do("GET", base+"/rest/v3/system/info", s, nil)
	m := a.obj(t)
	if m["error"] != "0" || m["reply"].(map[string]any)["localId"] == "" {
		t.Fatalf("wrapped info: %s", a.body)
	}
	if a := f.do("POST", base+"/rest/v3/system/cloud/bind", s, map[string]string{"systemId": id, "authKey": key}); a.status != 422 {
		t.Fatalf("missing owner: %d", a.status)
	}
	for i := 0; i < 2; i++ { // a repeated bind to the same system is accepted and counted once
		if a := f.do("POST", base+"/rest/v3/system/cloud/bind", s, map[string]string{"systemId": id, "authKey": key, "owner": acct}); a.status != 200 {
			t.Fatalf("bind %d: %d %s", i, a.status, a.body)
		}
	}
	if a := f.do("PATCH", base+"/rest/v3/system/settings", s, map[string]any{"autoDiscoveryEnabled": false, "systemName": "renamed"}); a.status != 200 {
		t.Fatalf("patch: %d", a.status)
	}
	snap := f.w.Snapshot()
	srv, _ := snap.Server("10.0.0.2:7001")
	cs, _ := snap.System(id)
	if snap.Counters.CloudBinds != 1 || srv.CloudID != id || cs.Status != "activated" || srv.Settings["autoDiscoveryEnabled"] != false || srv.Name != "renamed" {
		t.Fatalf("snapshot %+v", snap)
	}
	// A factory-new server cannot be bound without setup.
	s2 := f.login("10.0.0.3:7001", "admin")
	if a := f.do("POST", "/servers/10.0.0.3:7001/rest/v3/system/cloud/bind", s2, map[string]string{"systemId": id, "authKey": key, "owner": acct}); a.status != 403 {
		t.Fatalf("bind before setup: %d %s", a.status, a.body)
	}
}

func TestWorld_Farm_SessionsExpireAndLockOut(t *testing.T) {
	for _, status := range []int{401, 403} {
		clk := newManualClock()
		f := newFx(t, Options{SessionLifetime: 300 * time.Millisecond, ExpiredSessionStatus: status, LockoutAfter: 2, Now: clk.now})
		s := f.login("h:1", "admin")
		clk.add(400 * time.Millisecond)
		a := f.do("GET", "/servers/h:1/rest/v3/system/info", s, nil)
		if a.status != status || a.header.Get("x-auth-result") != "Auth_WrongSessionToken" {
			t.Fatalf("expired session: %d %v", a.status, a.header)
		}
		for i := 0; i < 2; i++ {
			f.do("POST", "/servers/h:1/rest/v3/login/sessions", "", map[string]string{"username": "admin", "password": "bad"})
		}
		if a := f.do("POST", "/servers/h:1/rest/v3/login/sessions", "", map[string]string{"username": "admin", "password": "admin"}); a.status != 403 {
			t.Fatalf("locked out: %d", a.status)
		}
	}
}

func TestWorld_FailNext_LosesAppliedAnswer(t *testing.T) {
	f := newFx(t, Options{})
	tok := f.token()
	f.w.FailNext(Failure{Method: "POST", Path: "/cdb/systems/bind", Lose: true})
	if a := f.do("POST", "/cdb/systems/bind", tok, map[string]string{"name": "lost"}); a.status != 0 {
		t.Fatalf("lost answer arrived: %d", a.status)
	}
	if c := f.w.Snapshot().Counters; c.Binds != 1 {
		t.Fatalf("lost bind not applied: %+v", c)
	}
	f.w.FailNext(Failure{Path: "/cdb/systems", Times: 2, Status: 503, Code: "retryLater", Text: "busy", RetryAfter: 2 * time.Second})
	for i := 0; i < 2; i++ {
		a := f.do("GET", "/cdb/systems", tok, nil)
		if a.status != 503 || a.header.Get("Retry-After") != "2" || a.obj(t)["resultCode"] != "retryLater" {
			t.Fatalf("scripted failure %d: %d %s", i, a.status, a.body)
		}
	}
	if a := f.do("GET", "/cdb/systems", tok, nil); a.status != 200 {
		t.Fatalf("script did not end: %d", a.status)
	}
	f.w.FailNext(Failure{Path: "/rest/v3/system/setup", Status: 500, Code: "internalServerError", Text: "boom"})
	s := f.login("h:2", "admin")
	a := f.do("POST", "/servers/h:2/rest/v3/system/setup", s, map[string]any{"name": "x", "local": map[string]string{"password": "Passw0rd!"}})
	if m := a.obj(t); a.status != 500 || m["errorId"] != "internalServerError" || m["error"] != "500" {
		t.Fatalf("server envelope: %d %s", a.status, a.body)
	}
}
