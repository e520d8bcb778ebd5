package cnfake

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"provision/providers/lifecycletest"
)

type client struct {
	t    *testing.T
	base string
	key  string
	tok  string
}

type envelope struct {
	Result     map[string]any `json:"result"`
	StatusCode int            `json:"statusCode"`
	Message    string         `json:"message"`
	Token      string         `json:"token"`
}

func (c *client) do(method, path, body string) (int, envelope) {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if c.key != "" {
		req.Header.Set("Ocp-Apim-Subscription-Key", c.key)
	}
	if c.tok != "" {
		req.Header.Set("Authorization", "Bearer "+c.tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e envelope
	if err := json.Unmarshal(b, &e); err != nil {
		c.t.Fatalf("%s %s: not JSON: %s", method, path, b)
	}
	return resp.StatusCode, e
}

func start(t *testing.T, mut func(*Options)) (*Server, *client) {
	o := DemoOptions()
	o.JobDelay, o.Now = 60*time.Millisecond, testClock.Now
	if mut != nil {
		mut(&o)
	}
	s := New(o)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, &client{t: t, base: ts.URL, key: DemoSubscriptionKey}
}

const lic = "/onboarding/license/" + DemoLicenseID

// testClock drives every fake of this file (tests do not run in parallel).
var testClock = lifecycletest.NewManualClock(time.Now())

func (c *client) login() { c.loginAs("") }

// loginAs takes a license token ("") or the account token of account.
func (c *client) loginAs(account string) {
	path := "/authorize/license/" + DemoLicenseID + "/token"
	if account != "" {
		path += "?accountId=" + account
	}
	st, e := c.do("POST", path, `{"APIApplicationId": "`+DemoAppID+`", "Secret": "`+DemoAppSecret+`"}`)
	tok, _ := e.Result["token"].(string)
	if tok == "" {
		tok = e.Token
	}
	if st != 200 || tok == "" {
		c.t.Fatalf("token: %d %+v", st, e)
	}
	c.tok = tok
}

func TestServer_KeysAndTokens(t *testing.T) {
	_, c := start(t, nil)
	c.key = ""
	if st, e := c.do("GET", lic+"/licenseAccounts", ""); st != 401 || !strings.Contains(e.Message, "missing subscription key") {
		t.Fatalf("no key: %d %+v", st, e)
	}
	c.key = "wrong"
	if st, e := c.do("POST", "/authorize/license/"+DemoLicenseID+"/token", "{}"); st != 401 || e.StatusCode != 401 || !strings.Contains(e.Message, "invalid subscription key") {
		t.Fatalf("wrong key: %d %+v", st, e)
	}
	c.key = DemoSubscriptionKey
	if st, _ := c.do("GET", lic+"/licenseAccounts", ""); st != 401 {
		t.Fatalf("no token: %d", st)
	}
	if st, e := c.do("POST", "/authorize/license/"+DemoLicenseID+"/token", `{"APIApplicationId": "`+DemoAppID+`", "Secret": "x"}`); st != 401 || e.StatusCode != 401 {
		t.Fatalf("wrong secret: %d %+v", st, e)
	}
	c.login()
	if st, e := c.do("GET", lic+"/licenseAccounts", ""); st != 200 || e.StatusCode != 200 || e.Result["accounts"] == nil {
		t.Fatalf("list: %d %+v", st, e)
	}
}

func TestServer_TokenShapesAndExpiry(t *testing.T) {
	_, c := start(t, func(o *Options) { o.TopLevelToken = true; o.TokenLifetime = 100 * time.Millisecond })
	_, e := c.do("POST", "/authorize/license/"+DemoLicenseID+"/token", `{"APIApplicationId": "`+DemoAppID+`", "Secret": "`+DemoAppSecret+`"}`)
	if e.Token == "" || e.Result != nil {
		t.Fatalf("top-level token answer: %+v", e)
	}
	c.tok = e.Token
	testClock.Add(150 * time.Millisecond)
	if st, e := c.do("GET", lic+"/licenseAccounts", ""); st != 401 || !strings.Contains(e.Message, "expired") {
		t.Fatalf("expired token: %d %+v", st, e)
	}
}

func TestServer_OnboardScopeRescan(t *testing.T) {
	s, c := start(t, nil)
	c.login()
	body := `{"AccountName": "prod", "AWSAccountId": "111122223333", "AWSRoleName": "CloudneetiReadOnly"}`
	st, e := c.do("POST", lic+"/account/aws", body)
	acc, _ := e.Result["accountId"].(string)
	job, _ := e.Result["jobId"].(string)
	if st != 200 || acc == "" || job == "" {
		t.Fatalf("onboard: %d %+v", st, e)
	}
	if st, e := c.do("POST", lic+"/account/aws", body); st != 409 || e.StatusCode != 409 {
		t.Fatalf("duplicate: %d %+v", st, e)
	}
	if st, e := c.do("POST", lic+"/account/aws", `{"AccountName": "x", "AWSAccountId": "12"}`); st != 400 || !strings.Contains(e.Message, "AWSAccountId") || !strings.Contains(e.Message, "AWSRoleName") {
		t.Fatalf("validation: %d %+v", st, e)
	}
	status := func(j string) string {
		_, e := c.do("GET", "/compliance/license/"+DemoLicenseID+"/account/"+acc+"/job/"+j+"/status", "")
		s, _ := e.Result["jobStatus"].(string)
		return s
	}
	// Rescan and job status take only an account token (initiateScanAPI.md).
	for _, path := range []string{"/rescan", "/job/" + job + "/status"} {
		if st, e := c.do("GET", "/compliance/license/"+DemoLicenseID+"/account/"+acc+path, ""); st != 401 || e.StatusCode != 401 {
			t.Fatalf("%s with a license token: %d %+v, want 401", path, st, e)
		}
	}
	license := c.tok
	c.loginAs(acc)
	if got := status(job); got != "Pending" {
		t.Fatalf("new job: %s", got)
	}
	if st, e := c.do("GET", "/compliance/license/"+DemoLicenseID+"/account/"+acc+"/rescan", ""); st != 403 {
		t.Fatalf("rescan outside the scope: %d %+v", st, e)
	}
	// Onboarding, the account list and the API scope take only a license token.
	for _, call := range [][3]string{{"GET", lic + "/licenseAccounts", ""}, {"PUT", lic + "/config", `{"accountId": "` + acc + `"}`}, {"POST", lic + "/account/aws", body}} {
		if st, e := c.do(call[0], call[1], call[2]); st != 401 || e.StatusCode != 401 {
			t.Fatalf("%s %s with an account token: %d %+v, want 401", call[0], call[1], st, e)
		}
	}
	account := c.tok
	c.tok = license
	if st, _ := c.do("PUT", lic+"/config", `{"accountId": "`+acc+`"}`); st != 200 {
		t.Fatalf("scope: %d", st)
	}
	c.tok = account
	_, e = c.do("GET", "/compliance/license/"+DemoLicenseID+"/account/"+acc+"/rescan", "")
	rescan, _ := e.Result["jobId"].(string)
	testClock.Add(40 * time.Millisecond)
	if got := status(rescan); got != "Running" {
		t.Fatalf("running job: %s", got)
	}
	testClock.Add(40 * time.Millisecond)
	if got := status(rescan); got != "Success" {
		t.Fatalf("finished job: %s", got)
	}
	c.tok = license
	_, e = c.do("GET", lic+"/licenseAccounts", "")
	list, _ := e.Result["accounts"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["isInApiScope"] != true || list[0].(map[string]any)["connectorType"] != "AWS" {
		t.Fatalf("list: %+v", e)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if snap := s.Snapshot(); snap.Counters.Onboarded != 1 || snap.Counters.Conflicts != 1 || snap.Counters.ScopeAdds != 1 || snap.Counters.Rescans != 1 || len(snap.Jobs) != 2 {
		t.Fatalf("snapshot %+v", snap)
	}
}

func TestServer_ErrorsIn200(t *testing.T) {
	_, c := start(t, func(o *Options) { o.ErrorsIn200 = true })
	c.login()
	if st, e := c.do("PUT", lic+"/config", `{"accountId": "nope"}`); st != 200 || e.StatusCode != 404 {
		t.Fatalf("error in 200: %d %+v", st, e)
	}
}

// Over the server-side limit the API gateway answers 429 with Retry-After and its
// {statusCode, message} body.
func TestServer_RateLimit(t *testing.T) {
	s, c := start(t, func(o *Options) { o.Faults.RateLimit, o.Faults.RateBurst = 0.001, 1 })
	c.login()
	req, _ := http.NewRequest("GET", c.base+lic+"/licenseAccounts", nil)
	req.Header.Set("Ocp-Apim-Subscription-Key", c.key)
	req.Header.Set("Authorization", "Bearer "+c.tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var e envelope
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || json.Unmarshal(b, &e) != nil || e.StatusCode != 429 || !strings.Contains(e.Message, "Rate limit is exceeded") {
		t.Fatalf("over the limit: %d Retry-After %q body %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
	if n := s.Faults.Counts().Throttled; n != 1 {
		t.Fatalf("throttled %d", n)
	}
}
