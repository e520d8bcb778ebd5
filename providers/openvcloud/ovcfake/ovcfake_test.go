package ovcfake

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"provision/providers/lifecycletest"
)

// clock moves only when told.
type clock = lifecycletest.ManualClock

type client struct {
	t    *testing.T
	base string
}

// post sends form values (the seed's curl style) and returns status and body.
func (c client) post(path string, form url.Values, header ...string) (int, string) {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func start(t *testing.T, mut func(*Options)) (*Server, client, *clock) {
	clk := lifecycletest.NewManualClock(time.Now())
	o := DemoOptions()
	o.AsyncDelay, o.DeployDelay, o.ResultTTL, o.Now = 50*time.Millisecond, 50*time.Millisecond, 200*time.Millisecond, clk.Now
	if mut != nil {
		mut(&o)
	}
	s := New(o)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, client{t, ts.URL}, clk
}

func session(c client) string {
	st, body := c.post("/restmachine/cloudapi/users/authenticate", url.Values{"username": {DemoUsername}, "password": {DemoPassword}})
	var key string
	if st != 200 || json.Unmarshal([]byte(body), &key) != nil {
		c.t.Fatalf("login: %d %s", st, body)
	}
	return key
}

func TestServer_SessionCreateListAndConflict(t *testing.T) {
	s, c, clk := start(t, nil)
	key := session(c)
	create := url.Values{"accountId": {"42"}, "location": {DemoLocation}, "name": {"shop"}, "access": {DemoUsername}}
	if st, body := c.post("/restmachine/cloudapi/cloudspaces/create?authkey="+key, create); st != 200 || body != "100" {
		t.Fatalf("create: %d %s", st, body)
	}
	if st, body := c.post("/restmachine/cloudapi/cloudspaces/create?authkey="+key, create); st != 409 || body != `"Cloud Space with name shop already exists."` {
		t.Fatalf("duplicate: %d %s", st, body)
	}
	st, body := c.post("/restmachine/cloudapi/cloudspaces/list?authkey="+key, nil)
	var list []map[string]any
	if st != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list) != 1 || list[0]["status"] != "VIRTUAL" || list[0]["accountName"] != DemoAccountName {
		t.Fatalf("list: %d %s", st, body)
	}
	clk.Add(60 * time.Millisecond)
	if st, body := c.post("/restmachine/cloudapi/cloudspaces/get?authkey="+key, url.Values{"cloudspaceId": {"100"}}); st != 200 || !strings.Contains(body, `"status":"DEPLOYED"`) {
		t.Fatalf("get: %d %s", st, body)
	}
	// A soft delete leaves the space DELETED: listed only with includedeleted, and
	// still holding its name; a permanent delete (DESTROYED) frees it.
	c.post("/restmachine/cloudapi/cloudspaces/delete?authkey="+key, url.Values{"cloudspaceId": {"100"}})
	if st, body := c.post("/restmachine/cloudapi/cloudspaces/list?authkey="+key, nil); st != 200 || body != "[]" {
		t.Fatalf("list after a soft delete: %d %s", st, body)
	}
	if st, body := c.post("/restmachine/cloudapi/cloudspaces/list?authkey="+key, url.Values{"includedeleted": {"true"}}); st != 200 || !strings.Contains(body, `"status":"DELETED"`) {
		t.Fatalf("list with includedeleted: %d %s", st, body)
	}
	if st, _ := c.post("/restmachine/cloudapi/cloudspaces/create?authkey="+key, create); st != 409 {
		t.Fatalf("create over a DELETED space: %d, want 409", st)
	}
	c.post("/restmachine/cloudapi/cloudspaces/delete?authkey="+key, url.Values{"cloudspaceId": {"100"}, "permanently": {"true"}})
	if st, body := c.post("/restmachine/cloudapi/cloudspaces/list?authkey="+key, url.Values{"includedeleted": {"true"}}); st != 200 || body != "[]" {
		t.Fatalf("list after a permanent delete: %d %s", st, body)
	}
	if st, _ := c.post("/restmachine/cloudapi/cloudspaces/create?authkey="+key, create); st != 200 {
		t.Fatalf("create after a permanent delete: %d", st)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if snap := s.Snapshot(); len(snap.Spaces) != 2 || snap.Counters.Creates != 2 || snap.Counters.Conflicts != 2 || snap.Counters.Deletes != 2 {
		t.Fatalf("snapshot %+v", snap)
	}
}

func TestServer_CreateValidation(t *testing.T) {
	_, c, _ := start(t, nil)
	key := session(c)
	for _, tc := range []struct {
		form   url.Values
		status int
		msg    string
	}{
		{url.Values{"accountId": {"42"}, "location": {DemoLocation}, "access": {"u"}}, 400, "Param with name:name is missing."},
		{url.Values{"accountId": {"42"}, "location": {DemoLocation}, "name": {"a"}}, 400, "Param with name:access is missing."},
		{url.Values{"accountId": {"7"}, "location": {DemoLocation}, "name": {"a"}, "access": {"u"}}, 404, "Account does not exist"},
		{url.Values{"accountId": {"42"}, "location": {"x"}, "name": {"a"}, "access": {"u"}}, 400, "Location x does not exists"},
		{url.Values{"accountId": {"42"}, "location": {DemoLocation}, "name": {"a"}, "access": {"u"}, "privatenetwork": {"8.8.8.0/24"}}, 400, "privatenetwork 8.8.8.0/24"},
		{url.Values{"accountId": {"42"}, "location": {DemoLocation}, "name": {"a"}, "access": {"u"}, "type": {"bridge"}}, 400, "type bridge"},
		{url.Values{"accountId": {"42"}, "location": {DemoLocation}, "name": {"a"}, "access": {"u"}, "maxNumPublicIP": {"0"}}, 400, "at least 1 Public IP"},
	} {
		st, body := c.post("/restmachine/cloudapi/cloudspaces/create?authkey="+key, tc.form)
		var msg string
		_ = json.Unmarshal([]byte(body), &msg)
		if st != tc.status || !strings.Contains(msg, tc.msg) {
			t.Errorf("%v: %d %s, want %d %q", tc.form, st, body, tc.status, tc.msg)
		}
	}
}

func TestServer_AsyncTaskLifecycle(t *testing.T) {
	s, c, clk := start(t, nil)
	key := session(c)
	st, body := c.post("/restmachine/cloudapi/cloudspaces/create?authkey="+key, url.Values{"_async": {"True"}, "accountId": {"42"}, "location": {DemoLocation}, "name": {"a"}, "access": {"u"}})
	var guid string
	if st != 200 || json.Unmarshal([]byte(body), &guid) != nil || len(guid) != 36 {
		t.Fatalf("async create: %d %s", st, body)
	}
	if len(s.Snapshot().Spaces) != 0 {
		t.Fatal("the async create ran at once")
	}
	if st, body := c.post("/restmachine/system/task/get?authkey="+key, url.Values{"taskguid": {guid}}); st != 202 || body != "" {
		t.Fatalf("running task: %d %q", st, body)
	}
	clk.Add(60 * time.Millisecond)
	if st, body := c.post("/restmachine/system/task/get?authkey="+key, url.Values{"taskguid": {guid}}); st != 200 || body != "[true,100]" {
		t.Fatalf("done task: %d %s", st, body)
	}
	// A second async create fails in the task, not at the call.
	_, body = c.post("/restmachine/cloudapi/cloudspaces/create?authkey="+key, url.Values{"_async": {"true"}, "accountId": {"42"}, "location": {DemoLocation}, "name": {"a"}, "access": {"u"}})
	_ = json.Unmarshal([]byte(body), &guid)
	clk.Add(60 * time.Millisecond)
	if st, body := c.post("/restmachine/system/task/get?authkey="+key, url.Values{"taskguid": {guid}}); st != 200 || body != `[false,"Cloud Space with name a already exists."]` {
		t.Fatalf("failed task: %d %s", st, body)
	}
	clk.Add(250 * time.Millisecond)
	if st, _ := c.post("/restmachine/system/task/get?authkey="+key, url.Values{"taskguid": {guid}}); st != 404 {
		t.Fatalf("expired task: %d", st)
	}
}

func TestServer_Credentials(t *testing.T) {
	s, c, clk := start(t, func(o *Options) { o.TokenLifetime = 300 * time.Millisecond })
	// The python sample sends the token request's parameters in the query.
	q := url.Values{"grant_type": {"client_credentials"}, "client_id": {DemoClientID}, "client_secret": {DemoClientSecret}, "response_type": {"id_token"}}
	st, jwt := c.post("/v1/oauth/access_token?"+q.Encode(), nil)
	if st != 200 || strings.Count(jwt, ".") != 2 {
		t.Fatalf("token: %d %s", st, jwt)
	}
	if st, _ := c.post("/restmachine/cloudapi/accounts/list", nil, "Authorization", "bearer "+jwt); st != 200 {
		t.Fatalf("accounts/list with JWT: %d", st)
	}
	st, body := c.post("/v1/oauth/access_token", url.Values{"grant_type": {"client_credentials"}, "client_id": {DemoClientID}, "client_secret": {DemoClientSecret}}, "Accept", "application/json")
	if st != 200 || !strings.Contains(body, `"access_token"`) {
		t.Fatalf("JSON token: %d %s", st, body)
	}
	if st, _ := c.post("/v1/oauth/access_token", url.Values{"grant_type": {"client_credentials"}, "client_id": {DemoClientID}, "client_secret": {"wrong"}}); st != 401 {
		t.Fatalf("wrong secret: %d", st)
	}
	key := session(c)
	clk.Add(350 * time.Millisecond)
	if st, _ := c.post("/restmachine/cloudapi/accounts/list", nil, "Authorization", "bearer "+jwt); st != 401 {
		t.Fatalf("expired JWT: %d", st)
	}
	if st, body := c.post("/restmachine/cloudapi/accounts/list?authkey="+key, nil); st != 419 || body != `"key not valid or expired"` {
		t.Fatalf("expired key: %d %s", st, body)
	}
	if st, _ := c.post("/restmachine/cloudapi/accounts/list", nil); st != 401 {
		t.Fatalf("no credentials: %d", st)
	}
	if c := s.Snapshot().Counters; c.Tokens != 2 || c.Sessions != 1 {
		t.Fatalf("counters %+v", c)
	}
}

// The task answers ovc-sdk-go knows: [] while running, and a single 404 right
// after the create on servers before 2.5.6.
func TestServer_TaskGet_OlderServerAnswers(t *testing.T) {
	_, c, clk := start(t, func(o *Options) { o.RunningAnswer, o.EarlyTaskNotFound = "[]", true })
	key := session(c)
	_, body := c.post("/restmachine/cloudapi/cloudspaces/create?authkey="+key, url.Values{"_async": {"true"}, "accountId": {"42"}, "location": {DemoLocation}, "name": {"a"}, "access": {"u"}})
	var guid string
	_ = json.Unmarshal([]byte(body), &guid)
	get := func() (int, string) {
		return c.post("/restmachine/system/task/get?authkey="+key, url.Values{"taskguid": {guid}})
	}
	if st, _ := get(); st != 404 {
		t.Fatalf("first poll: %d, want 404", st)
	}
	if st, body := get(); st != 200 || body != "[]" {
		t.Fatalf("running: %d %q, want 200 []", st, body)
	}
	clk.Add(60 * time.Millisecond)
	if st, body := get(); st != 200 || body != "[true,100]" {
		t.Fatalf("done: %d %s", st, body)
	}
}

// The server-side rate limit answers 429 with Retry-After and the message as a JSON
// string, and lets requests through again once the bucket refills.
func TestServer_RateLimit(t *testing.T) {
	s, c, _ := start(t, func(o *Options) { o.Faults.RateLimit, o.Faults.RateBurst = 0.001, 2 })
	session(c)
	session(c)
	req, _ := http.NewRequest(http.MethodPost, c.base+"/restmachine/cloudapi/users/authenticate", strings.NewReader("username=ops&password=x"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var msg string
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || json.Unmarshal(b, &msg) != nil || !strings.Contains(msg, "Too many requests") {
		t.Fatalf("over the limit: %d Retry-After %q body %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
	if n := s.Faults.Counts().Throttled; n != 1 {
		t.Fatalf("throttled %d", n)
	}
}
