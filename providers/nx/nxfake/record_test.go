package nxfake

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"provision/providers/fault"
)

// TestWorld_OrgList_PagesWithAbsoluteNext: DRF's page-number form; next and
// previous are absolute URLs (null at the ends), count is the total, items report
// system_state and no status.
func TestWorld_OrgList_PagesWithAbsoluteNext(t *testing.T) {
	f := newFx(t, Options{Organizations: []string{"org-7"}, PageSize: 2})
	tok := f.token()
	for i := 0; i < 5; i++ {
		if a := f.do("POST", "/partners/api/v3/cloud_systems/", tok, map[string]string{"name": fmt.Sprintf("s%d", i), "organization": "org-7"}); a.status != 201 {
			t.Fatalf("create: %d %s", a.status, a.body)
		}
	}
	path := "/partners/api/v2/organizations/org-7/cloud_systems/"
	var names []string
	for page := 1; path != ""; page++ {
		a := f.do("GET", path, tok, nil)
		if a.status != 200 {
			t.Fatalf("page %d: %d %s", page, a.status, a.body)
		}
		m := a.obj(t)
		if m["count"] != float64(5) {
			t.Fatalf("count %v", m["count"])
		}
		if (page == 1) != (m["previous"] == nil) {
			t.Errorf("page %d: previous %v", page, m["previous"])
		}
		for _, it := range m["results"].([]any) {
			item := it.(map[string]any)
			if item["system_state"] != "notActivated" || item["status"] != nil || item["organization"] != "org-7" {
				t.Errorf("item %v", item)
			}
			names = append(names, item["name"].(string))
		}
		path = ""
		if next, ok := m["next"].(string); ok {
			u, err := url.Parse(next)
			if err != nil || u.Scheme != "http" || u.Host != strings.TrimPrefix(f.ts.URL, "http://") {
				t.Fatalf("next %q is not an absolute URL of the fake", next)
			}
			path = u.RequestURI()
		}
	}
	if strings.Join(names, ",") != "s0,s1,s2,s3,s4" {
		t.Errorf("names %v", names)
	}
	if a := f.do("GET", "/partners/api/v2/organizations/org-7/cloud_systems/?page=9", tok, nil); a.status != 404 || a.obj(t)["detail"] != "Invalid page." {
		t.Errorf("page past the end: %d %s", a.status, a.body)
	}
}

// TestWorld_OrgList_NextKeepsAStrippedPrefix: mounted behind a prefix (as in the
// sandbox), the next link still carries the prefix the client used.
func TestWorld_OrgList_NextKeepsAStrippedPrefix(t *testing.T) {
	w := New(Options{Accounts: map[string]string{acct: acctPW}, PageSize: 1})
	mux := http.NewServeMux()
	mux.Handle("/nxcloud/", http.StripPrefix("/nxcloud", w.Cloud()))
	ts := httptest.NewServer(mux)
	defer ts.Close()
	f := &fx{t: t, w: w, ts: ts}
	tok := (&fx{t: t, w: w, ts: &httptest.Server{URL: ts.URL + "/nxcloud"}}).token()
	for i := 0; i < 2; i++ {
		f.do("POST", "/nxcloud/partners/api/v3/cloud_systems/", tok, map[string]string{"name": fmt.Sprintf("s%d", i), "organization": "o"})
	}
	a := f.do("GET", "/nxcloud/partners/api/v2/organizations/o/cloud_systems/", tok, nil)
	next, _ := a.obj(t)["next"].(string)
	if !strings.HasPrefix(next, ts.URL+"/nxcloud/partners/api/v2/organizations/o/cloud_systems/?page=2") {
		t.Fatalf("next %q", next)
	}
}

// TestWorld_RateLimit_AnswersInTheVendorsShape: over the bucket, /partners answers
// DRF's throttle body and /cdb the tooManyRequests envelope, both 429 with
// Retry-After; the farm is not limited.
func TestWorld_RateLimit_AnswersInTheVendorsShape(t *testing.T) {
	f := newFx(t, Options{Faults: fault.Config{RateLimit: 1, RateBurst: 1}})
	now := time.Unix(1_700_000_000, 0)
	f.w.Faults.SetClock(func() time.Time { return now })
	tok := f.token() // takes the one token
	a := f.do("GET", "/partners/api/v2/organizations/o/cloud_systems/", tok, nil)
	if a.status != 429 || a.header.Get("Retry-After") != "1" || a.obj(t)["detail"] != "Request was throttled. Expected available in 1 second." {
		t.Fatalf("partners: %d %q %s", a.status, a.header.Get("Retry-After"), a.body)
	}
	a = f.do("GET", "/cdb/systems", tok, nil)
	if a.status != 429 || a.header.Get("Retry-After") != "1" || a.obj(t)["resultCode"] != "tooManyRequests" {
		t.Fatalf("cdb: %d %q %s", a.status, a.header.Get("Retry-After"), a.body)
	}
	for i := 0; i < 3; i++ {
		if a := f.do("POST", ServerPath("https://10.0.0.9:7001")+"/rest/v3/login/sessions", "", map[string]string{"username": "admin", "password": "admin"}); a.status != 200 {
			t.Fatalf("farm request %d: %d %s", i, a.status, a.body)
		}
	}
	now = now.Add(time.Second)
	if a := f.do("GET", "/cdb/systems", tok, nil); a.status != 200 {
		t.Fatalf("after a second: %d %s", a.status, a.body)
	}
	if c := f.w.Faults.Counts(); c.Throttled != 2 {
		t.Errorf("counts %v", c)
	}
}

// TestWorld_Farm_OrganizationIDFrom61: a 6.1 server passes organizationId on and
// an organization's system needs it; a 6.0 server ignores the field.
func TestWorld_Farm_OrganizationIDFrom61(t *testing.T) {
	for _, tc := range []struct {
		version    string
		send       string
		wantStatus int
		wantOrg    string
	}{
		{"6.1.0.40000", "", 422, ""},
		{"6.1.0.40000", "org-7", 204, "org-7"},
		{"6.0.1.39873", "", 204, ""},
		{"6.0.1.39873", "org-7", 204, ""},
	} {
		t.Run(tc.version+" "+tc.send, func(t *testing.T) {
			f := newFx(t, Options{PreSetUp: []string{"10.0.0.1:7001"}, ServerAdminPassword: "Pw-123456", ServerVersion: tc.version})
			tok := f.token()
			a := f.do("POST", "/partners/api/v3/cloud_systems/", tok, map[string]string{"name": "s", "organization": "org-7"})
			m := a.obj(t)
			sess := f.login("10.0.0.1:7001", "Pw-123456")
			body := map[string]string{"systemId": m["id"].(string), "authKey": m["authKey"].(string), "owner": acct}
			if tc.send != "" {
				body["organizationId"] = tc.send
			}
			if a := f.do("POST", ServerPath("https://10.0.0.1:7001")+"/rest/v3/system/cloud/bind", sess, body); a.status != tc.wantStatus {
				t.Fatalf("bind: %d %s", a.status, a.body)
			}
			if srv, _ := f.w.Snapshot().Server("10.0.0.1:7001"); srv.CloudOrganization != tc.wantOrg {
				t.Errorf("organization %q, want %q", srv.CloudOrganization, tc.wantOrg)
			}
			info := f.do("GET", ServerPath("https://10.0.0.1:7001")+"/rest/v3/system/info", sess, nil).obj(t)
			if info["version"] != tc.version {
				t.Errorf("info version %v", info["version"])
			}
		})
	}
}

// TestWorld_Shares_EchoVMSIds: the cloud fills in vmsUserId and userRoleId (and
// lists roleIds) and keeps the vmsUserId across upserts.
func TestWorld_Shares_EchoVMSIds(t *testing.T) {
	f := newFx(t, Options{})
	tok := f.token()
	id, _ := f.bind(tok, "s")
	share := map[string]any{"accountEmail": "u@example.com", "accessRole": "viewer"}
	f.do("POST", "/cdb/systems/"+id+"/users", tok, share)
	first := f.w.Snapshot().Shares[id][0]
	share["accessRole"] = "advancedViewer"
	f.do("POST", "/cdb/systems/"+id+"/users", tok, share)
	second := f.w.Snapshot().Shares[id][0]
	if first.VMSUserID == "" || first.VMSUserID != second.VMSUserID || second.UserRoleID == "" || second.UserRoleID == first.UserRoleID {
		t.Fatalf("first %+v second %+v", first, second)
	}
	a := f.do("GET", "/cdb/systems/"+id+"/users", tok, nil)
	if !strings.Contains(string(a.body), `"roleIds":["`+second.UserRoleID+`"]`) {
		t.Errorf("list %s", a.body)
	}
}
