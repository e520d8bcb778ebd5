package edgefake

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"provision/providers/fault"
)

const adminPW = "Admin123pw"

type client struct {
	t  *testing.T
	ts *httptest.Server
}

func newFake(t *testing.T, o Options) (*Server, *client) {
	t.Helper()
	if o.AdminPassword == "" {
		o.AdminPassword = adminPW
	}
	s := New(o)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, &client{t: t, ts: ts}
}

// do sends a request and returns the status and the decoded body.
func (c *client) do(method, path, token string, body any) (int, map[string]any) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.ts.URL+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m
}

func (c *client) login(user, password string) string {
	c.t.Helper()
	st, m := c.do(http.MethodPost, "/v1/authorization", "", map[string]string{"user": user, "password": password})
	if st != http.StatusOK {
		c.t.Fatalf("login %s: %d %v", user, st, m)
	}
	if d, ok := m["data"].(map[string]any); ok {
		m = d
	}
	return m["token"].(string)
}

// world: sysadmin token, an approved general admin with an approved business.
func setup(t *testing.T, o Options) (*Server, *client, string, string) {
	s, c := newFake(t, o)
	admin := c.login(AdminName, adminPW)
	s.SeedUser("ga", "General123", true, Approved)
	s.SeedBusiness("retail", "ga", Approved)
	return s, c, admin, c.login("ga", "General123")
}

func TestServer_DocumentedAnswers(t *testing.T) {
	s, c, admin, ga := setup(t, Options{})
	s.SeedUser("plain", "Plain12345", false, Approved)
	plain := c.login("plain", "Plain12345")
	s.SeedUser("waiting", "Waiting123", true, Pending)
	waiting := c.login("waiting", "Waiting123")
	newUser := map[string]any{"user": "u1", "password": "Good1234", "phone": "1", "isAdmin": false, "realName": "U"}
	for _, tc := range []struct {
		name, method, path, token string
		body                      any
		status                    int
		msg                       string
	}{
		{"no token", "GET", "/v1/admin/user", "", nil, 401, "User need to log in first."},
		{"unknown token", "GET", "/v1/admin/user", "eyJnope", nil, 401, "User need to log in first."},
		{"wrong password", "POST", "/v1/authorization", "", map[string]string{"user": "admin", "password": "nope"}, 422, "wrong user name or password"},
		{"weak password", "POST", "/v1/user", "", map[string]any{"user": "u2", "password": "weak", "phone": "1", "isAdmin": false, "realName": "U"}, 422, "Password should be 8-20"},
		{"missing phone", "POST", "/v1/user", "", map[string]any{"user": "u2", "password": "Good1234", "isAdmin": false, "realName": "U"}, 422, "missing parameters: phone"},
		{"register", "POST", "/v1/user", "", newUser, 200, ""},
		{"register twice", "POST", "/v1/user", "", newUser, 422, "user already exists"},
		{"only the sysadmin audits users", "PUT", "/v1/admin/user/2", ga, map[string]int{"status": 1}, 403, "only the system administrator audits users"},
		{"audit status out of range", "PUT", "/v1/admin/user/2", admin, map[string]int{"status": 7}, 422, "status must be"},
		{"audit unknown user", "PUT", "/v1/admin/user/999", admin, map[string]int{"status": 1}, 404, "user not found"},
		{"general user lists users", "GET", "/v1/admin/user", plain, nil, 403, "admin role"},
		{"general user creates a sub-user", "POST", "/v1/admin/user", plain, newUser, 403, "sub-users"},
		{"admin without business creates a sub-user", "POST", "/v1/admin/user", waiting, map[string]any{"user": "u3", "password": "Good1234", "phone": "1", "isAdmin": false, "realName": "U"}, 403, "sub-users"},
		{"sysadmin creates a business", "POST", "/v1/business", admin, map[string]string{"name": "b", "introduce": "i", "objective": "o", "scale": "s"}, 403, "general administrator"},
		{"pending admin creates a business", "POST", "/v1/business", waiting, map[string]string{"name": "b", "introduce": "i", "objective": "o", "scale": "s"}, 403, "general administrator"},
		{"second business", "POST", "/v1/business", ga, map[string]string{"name": "b", "introduce": "i", "objective": "o", "scale": "s"}, 403, "already has a business"},
		{"only the sysadmin audits businesses", "PUT", "/v1/business/id/3", ga, map[string]any{"status": 1, "comment": "c"}, 403, "only the system administrator"},
		{"audit without comment", "PUT", "/v1/business/id/3", admin, map[string]any{"status": 1}, 422, "comment is required"},
		{"bad cluster label", "POST", "/v1/cluster/label", admin, map[string]any{"clusterName": []string{"cluster-a"}, "clusterLabel": "a b"}, 422, "clusterLabel may only use"},
		{"unknown cluster", "POST", "/v1/cluster/label", admin, map[string]any{"clusterName": []string{"nope"}, "clusterLabel": "x"}, 404, "cluster nope not found"},
		{"general admin labels clusters", "POST", "/v1/cluster/label", ga, map[string]any{"clusterName": []string{"cluster-a"}, "clusterLabel": "x"}, 403, "only the system administrator"},
		{"unknown node", "POST", "/v1/node/label", admin, map[string]any{"clusterName": "cluster-a", "nodeName": []string{"zz"}, "nodeLabel": "x"}, 404, "node zz not found"},
		{"repo user", "POST", "/v1/repository/user", admin, map[string]string{"user": "r", "password": "Repo12345"}, 200, ""},
		{"repo user twice", "POST", "/v1/repository/user", admin, map[string]string{"user": "r", "password": "Repo12345"}, 409, "username conflict"},
		{"repo user by non-admin", "POST", "/v1/repository/user", ga, map[string]string{"user": "r2", "password": "Repo12345"}, 403, "admin role"},
		{"project", "POST", "/v1/repository/project", admin, map[string]any{"projectName": "apps", "public": false}, 201, ""},
		{"project twice", "POST", "/v1/repository/project", admin, map[string]any{"projectName": "apps", "public": true}, 409, "Project name already exists."},
		{"bad project name", "POST", "/v1/repository/project", admin, map[string]any{"projectName": "Apps!", "public": true}, 400, "Unsatisfied with constraints"},
		{"registry", "POST", "/v1/repository/third", admin, map[string]string{"repositoryId": "r1", "address": "a", "user": "u", "password": "p"}, 200, ""},
		{"registry twice", "POST", "/v1/repository/third", admin, map[string]string{"repositoryId": "r1", "address": "a", "user": "u", "password": "p"}, 409, "already exists"},
		{"missing registry", "GET", "/v1/repository/third/none", admin, nil, 404, "Not found"},
		{"app with bad version", "POST", "/v1/app", ga, map[string]any{"appName": "a", "deployType": "deployment", "image": "i:1", "version": "1", "port": []int{80}}, 422, "version must have the format x.x"},
		{"app with bad deploy type", "POST", "/v1/app", ga, map[string]any{"appName": "a", "deployType": "job", "image": "i:1", "version": "1.0", "port": []int{80}}, 422, "deployType"},
		{"app with unknown registry", "POST", "/v1/app", ga, map[string]any{"appName": "a", "deployType": "deployment", "image": "i:1", "version": "1.0", "port": []int{80}, "repositoryId": "zz"}, 422, "repository zz does not exist"},
		{"app by a user without business", "POST", "/v1/app", plain, map[string]any{"appName": "a", "deployType": "deployment", "image": "i:1", "version": "1.0", "port": []int{80}}, 403, "approved business"},
		{"unknown API", "GET", "/v1/nothing", admin, nil, 404, "no such API"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, m := c.do(tc.method, tc.path, tc.token, tc.body)
			if st != tc.status {
				t.Fatalf("status %d %v, want %d", st, m, tc.status)
			}
			if tc.msg != "" {
				if msg, _ := m["msg"].(string); !strings.Contains(msg, tc.msg) || m["code"] != float64(tc.status) {
					t.Fatalf("answer %v, want code %d and msg %q", m, tc.status, tc.msg)
				}
			}
		})
	}
}

func TestServer_RejectsWrongMediaTypeAndBrokenJSON(t *testing.T) {
	_, c := newFake(t, Options{})
	resp, err := http.Post(c.ts.URL+"/v1/user", "text/plain", strings.NewReader("user=x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("status %d", resp.StatusCode)
	}
	resp, err = http.Post(c.ts.URL+"/v1/user", "application/json", strings.NewReader(`{"user":`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func TestServer_BusinessAuditCreatesNamespacesEverywhere(t *testing.T) {
	s, c := newFake(t, Options{Envelope: true})
	admin := c.login(AdminName, adminPW)
	s.SeedUser("ga", "General123", true, Approved)
	ga := c.login("ga", "General123")
	st, m := c.do("POST", "/v1/business", ga, map[string]string{"name": "retail", "introduce": "i", "objective": "o", "scale": "s"})
	if st != 200 || m["code"] != float64(200) {
		t.Fatalf("%d %v", st, m)
	}
	id := int(m["data"].(map[string]any)["id"].(float64))
	for i := 0; i < 2; i++ {
		if st, m := c.do("PUT", "/v1/business/id/"+strconv.Itoa(id), admin, map[string]any{"status": 1, "comment": "ok"}); st != 200 {
			t.Fatalf("%d %v", st, m)
		}
	}
	snap := s.Snapshot()
	for _, cl := range snap.Clusters {
		if strings.Join(cl.Namespaces, ",") != "ns"+strconv.Itoa(id) {
			t.Fatalf("cluster %s namespaces %v", cl.Name, cl.Namespaces)
		}
	}
	if snap.Counters.BusinessAudits != 1 || snap.Counters.NamespacesCreated != 2 {
		t.Fatalf("counters %+v", snap.Counters)
	}
	u, _ := snap.User("ga")
	if u.Business != id {
		t.Fatalf("owner %+v", u)
	}
	// The administrator now has a business: role 3, and may create sub-users.
	if _, m := c.do("GET", "/v1/authorization", ga, nil); m["data"].(map[string]any)["role"] != float64(3) {
		t.Fatalf("whoami %v", m)
	}
	if st, m := c.do("POST", "/v1/admin/user", ga, map[string]any{"user": "op", "password": "Operator12", "phone": "1", "isAdmin": false, "realName": "O"}); st != 200 {
		t.Fatalf("%d %v", st, m)
	}
	op, _ := s.Snapshot().User("op")
	if op.Status != Approved || op.Business != id || op.Parent != u.ID {
		t.Fatalf("sub-user %+v", op)
	}
}

func TestServer_TokensExpireAndRefreshWithinTheWindow(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	s, c := newFake(t, Options{Now: clock, TokenLifetime: time.Minute})
	tok := c.login(AdminName, adminPW)
	if st, _ := c.do("GET", "/v1/authorization", "Bearer "+tok, nil); st != 200 {
		t.Fatalf("bearer form refused: %d", st)
	}
	advance(2 * time.Minute)
	if st, m := c.do("GET", "/v1/authorization", tok, nil); st != 401 || m["msg"] != "token expired" {
		t.Fatalf("expired token: %d %v", st, m)
	}
	st, m := c.do("PUT", "/v1/authorization", tok, nil)
	if st != 200 {
		t.Fatalf("refresh: %d %v", st, m)
	}
	fresh := m["token"].(string)
	if st, _ := c.do("GET", "/v1/authorization", fresh, nil); st != 200 {
		t.Fatalf("refreshed token refused: %d", st)
	}
	// Five lifetimes after the login, refreshing is over.
	advance(4 * time.Minute)
	if st, _ := c.do("PUT", "/v1/authorization", fresh, nil); st != 401 {
		t.Fatalf("refresh past the window: %d", st)
	}
	if c := s.Snapshot().Counters; c.Logins != 1 || c.Refreshes != 1 {
		t.Fatalf("counters %+v", c)
	}
}

func TestServer_AnswerStyles(t *testing.T) {
	for _, tc := range []struct {
		name         string
		opts         Options
		wantStatus   int
		wantEnvelope bool
	}{
		{"plain", Options{}, 422, false},
		{"envelope", Options{Envelope: true}, 422, true},
		{"errors as OK", Options{ErrorsAsOK: true}, 200, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, c := newFake(t, tc.opts)
			st, m := c.do("POST", "/v1/authorization", "", map[string]string{"user": "admin", "password": adminPW})
			_, enveloped := m["data"]
			if st != 200 || enveloped != tc.wantEnvelope {
				t.Fatalf("login %d %v", st, m)
			}
			st, m = c.do("POST", "/v1/authorization", "", map[string]string{"user": "admin", "password": "bad"})
			if st != tc.wantStatus || m["code"] != float64(422) || m["msg"] != "wrong user name or password" {
				t.Fatalf("error %d %v", st, m)
			}
		})
	}
}

func TestServer_ListsPageAndFilter(t *testing.T) {
	s, c, admin, ga := setup(t, Options{})
	for i := 0; i < 25; i++ {
		s.SeedUser("user-"+strconv.Itoa(i), "Password12", false, Pending)
	}
	_, m := c.do("GET", "/v1/admin/user?page=3&pageSize=10", admin, nil)
	if m["total"] != float64(27) || len(m["list"].([]any)) != 7 {
		t.Fatalf("page 3: total %v, %d rows", m["total"], len(m["list"].([]any)))
	}
	_, m = c.do("GET", "/v1/admin/user", admin, nil)
	if len(m["list"].([]any)) != 10 {
		t.Fatalf("default page size: %d rows", len(m["list"].([]any)))
	}
	// Application names are matched as substrings, so clients must compare names.
	for _, name := range []string{"counter", "counter-2"} {
		if st, m := c.do("POST", "/v1/app", ga, map[string]any{"appName": name, "deployType": "deployment", "image": "i:1", "version": "1.0", "port": []int{80}}); st != 200 {
			t.Fatalf("%d %v", st, m)
		}
	}
	_, m = c.do("GET", "/v1/app?appName=counter", ga, nil)
	if m["total"] != float64(2) {
		t.Fatalf("apps %v", m)
	}
	_, m = c.do("GET", "/v1/node?clusterName=cluster-a&pageSize=2", admin, nil)
	if m["total"] != float64(3) || len(m["list"].([]any)) != 2 {
		t.Fatalf("nodes %v", m)
	}
}

func TestServer_CheckReportsDuplicates(t *testing.T) {
	s, c, _, ga := setup(t, Options{})
	if d := s.Check(); len(d) != 0 {
		t.Fatalf("fresh fake has duplicates %v", d)
	}
	for i := 0; i < 2; i++ {
		if st, m := c.do("POST", "/v1/app", ga, map[string]any{"appName": "twin", "deployType": "daemonset", "image": "i:1", "version": "1.0", "port": []int{80}}); st != 200 {
			t.Fatalf("%d %v", st, m)
		}
	}
	s.SeedUser("other", "Other12345", true, Approved)
	s.SeedBusiness("retail", "other", Pending)
	d := s.Check()
	if len(d) != 2 || !strings.HasPrefix(d[0], "application twin in namespace ns") || d[1] != "business retail (2)" {
		t.Fatalf("check %v", d)
	}
	if r := s.Report().(map[string]any); len(r["duplicates"].([]string)) != 2 {
		t.Fatalf("report %v", r)
	}
}

func TestServer_SnapshotIsADeepCopyWithoutSecrets(t *testing.T) {
	s, c, admin, ga := setup(t, Options{})
	c.do("POST", "/v1/repository/third", admin, map[string]string{"repositoryId": "r1", "address": "a", "user": "u", "password": "Secret-pw-1"})
	c.do("POST", "/v1/app", ga, map[string]any{"appName": "a", "deployType": "daemonset", "image": "i:1", "version": "1.0", "port": []int{80}, "env": map[string]string{"K": "v"}})
	snap := s.Snapshot()
	snap.Apps[0].Port[0] = 1
	snap.Apps[0].Env[0].Value = "changed"
	again := s.Snapshot()
	if again.Apps[0].Port[0] != 80 || again.Apps[0].Env[0].Value != "v" {
		t.Fatal("snapshot shares memory with the fake")
	}
	b, _ := json.Marshal(again)
	if strings.Contains(string(b), "Secret-pw-1") || strings.Contains(string(b), "General123") || strings.Contains(string(b), adminPW) {
		t.Fatal("a password is in the snapshot")
	}
}

func TestServer_ConcurrentRequestsAreSafe(t *testing.T) {
	s, c, admin, _ := setup(t, Options{})
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c.do("POST", "/v1/user", "", map[string]any{"user": "c" + strconv.Itoa(i%4), "password": "Good1234", "phone": "1", "isAdmin": false, "realName": "C"})
			c.do("POST", "/v1/cluster/label", admin, map[string]any{"clusterName": []string{"cluster-a", "cluster-b"}, "clusterLabel": "l"})
			c.do("GET", "/v1/admin/user", admin, nil)
		}(i)
	}
	wg.Wait()
	if d := s.Check(); len(d) != 0 {
		t.Fatalf("duplicates %v", d)
	}
	if n := s.Snapshot().Counters; n.UsersRegistered != 4 || n.ClusterLabelsAdded != 2 {
		t.Fatalf("counters %+v", n)
	}
}

// AppLookup plays a platform without the inferred application lookup; the rate
// limit answers 429 with Retry-After and {code, msg}.
func TestServer_AppLookupSwitchAndRateLimit(t *testing.T) {
	for _, st := range []int{http.StatusNotFound, http.StatusMethodNotAllowed} {
		_, c := newFake(t, Options{AppLookup: st})
		admin := c.login(AdminName, adminPW)
		for _, path := range []string{"/v1/app", "/v1/app?appName=x", "/v1/app/1"} {
			if got, _ := c.do(http.MethodGet, path, admin, nil); got != st {
				t.Fatalf("AppLookup %d: GET %s answered %d", st, path, got)
			}
		}
	}
	s, c := newFake(t, Options{Faults: fault.Config{RateLimit: 0.001, RateBurst: 1}})
	c.login(AdminName, adminPW)
	req, _ := http.NewRequest(http.MethodPost, c.ts.URL+"/v1/authorization", strings.NewReader(`{"user":"admin","password":"x"}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || m["code"] != float64(429) || m["msg"] == "" {
		t.Fatalf("over the limit: %d %q %v", resp.StatusCode, resp.Header.Get("Retry-After"), m)
	}
	if s.Faults.Counts().Throttled != 1 {
		t.Fatalf("counts %s", s.Faults.Counts())
	}
}
