package edge

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"provision/plan"
)

// Seeds: real answers in both styles and broken ones (HTML, truncated JSON, wrong
// types, huge strings).
var answerSeeds = []string{
	`{"token":"eyJhbGciOiJIUzI1NiJ9.x.y"}`,
	`{"code":200,"msg":"success","data":{"token":"eyJ.a.b","expire":3600}}`,
	`{"code":0,"msg":"ok","data":"eyJ.bare.string"}`,
	`"eyJ.bare.token"`,
	`{"access_token":"t","expires_in":"3600"}`,
	`{"total":2,"list":[{"id":1,"user":"admin","status":1},{"id":"2","user":"x","status":"0"}]}`,
	`{"code":200,"msg":"success","data":{"total":1,"list":[{"projectId":3,"projectName":"p","public":"true"}]}}`,
	`{"code":200,"data":{"data":{"total":1,"items":[{"appName":"a","port":[80,"81"]}]}}}`,
	`[{"nodeName":"n1","clusterName":"c"}]`,
	`{"code":200,"msg":"success","data":["retail-eu",{"clusterLabel":"x"}]}`,
	`{"code":422,"msg":"user already exists"}`,
	`{"code":"401","message":"token expired"}`,
	`{"code":200,"msg":"success","data":null}`,
	`{"total":0}`,
	`<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>`,
	`{"code":200,"msg":"success","data":{"total":3,"list":[{"id":1`,
	`{"total":"many","list":{"id":1}}`,
	`{"code":1e400,"msg":12,"data":[]}`,
	`{"list":[1,2,3],"total":-5}`,
	`{"id":1e30}`,
	`{"token":"` + strings.Repeat("A", 70000) + `"}`,
	``, `null`, `[]`, `{}`, `{"data":`, `{"code":{}}`,
}

func FuzzDecodeAnswer(f *testing.F) {
	for _, s := range answerSeeds {
		f.Add([]byte(s))
	}
	now := time.Unix(1_700_000_000, 0)
	f.Fuzz(func(t *testing.T, b []byte) {
		e := unwrap(b)
		_ = e.failed()
		_, _ = decodeToken(e.Data, now)
		_ = idOf(e.Data)
		if p, err := decodeList(e.Data); err == nil {
			for _, raw := range p.Items {
				var u User
				_ = u.UnmarshalJSON(raw)
				var bz Business
				_ = bz.UnmarshalJSON(raw)
				var pr Project
				_ = pr.UnmarshalJSON(raw)
				var a App
				_ = a.UnmarshalJSON(raw)
				var l labelName
				_ = l.UnmarshalJSON(raw)
			}
		}
	})
}

func FuzzDecodeErrorBody(f *testing.F) {
	for _, s := range answerSeeds {
		f.Add(422, []byte(s))
		f.Add(200, []byte(s))
	}
	h := http.Header{"Content-Type": {"application/json"}}
	f.Fuzz(func(t *testing.T, status int, b []byte) {
		code, msg := decodeErrorBody(status, h, b)
		if len(msg) > 310 {
			t.Fatalf("message not clipped: %d bytes", len(msg))
		}
		_ = code
		_ = expiredAnswer(status, h, b)
	})
}

func TestDecode_AnswerShapes(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	for _, tc := range []struct {
		name, body string
		token      string
		expiry     time.Time
		items      int
		total      int
		failed     bool
	}{
		{name: "plain token", body: `{"token":"a.b.c"}`, token: "a.b.c", items: -1},
		{name: "enveloped token with lifetime", body: `{"code":200,"msg":"ok","data":{"token":"t1","expire":60}}`, token: "t1", expiry: now.Add(time.Minute), items: -1},
		{name: "epoch seconds", body: `{"token":"t2","exp":1700003600}`, token: "t2", expiry: time.Unix(1700003600, 0), items: -1},
		{name: "bare string token", body: `{"code":0,"data":"t3"}`, token: "t3", items: -1},
		{name: "plain list", body: `{"total":2,"list":[{},{}]}`, items: 2, total: 2},
		{name: "enveloped nested list", body: `{"code":200,"msg":"","data":{"data":{"total":5,"rows":[{}]}}}`, items: 1, total: 5},
		{name: "bare array", body: `[1,2,3]`, items: 3, total: -1},
		{name: "empty page", body: `{"code":200,"msg":"success","data":{"total":0,"list":null}}`, items: 0, total: 0},
		{name: "error in HTTP 200", body: `{"code":403,"msg":"no"}`, items: -1, failed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := unwrap([]byte(tc.body))
			if e.failed() != tc.failed {
				t.Fatalf("failed = %v", e.failed())
			}
			if tc.token != "" {
				tok, err := decodeToken(e.Data, now)
				if err != nil || tok.Token != tc.token || !tok.Expiry.Equal(tc.expiry) {
					t.Fatalf("token %+v err %v", tok, err)
				}
			}
			if tc.items >= 0 {
				p, err := decodeList(e.Data)
				if err != nil || len(p.Items) != tc.items || p.Total != tc.total {
					t.Fatalf("page %d items total %d err %v", len(p.Items), p.Total, err)
				}
			}
		})
	}
}

func TestListAll_PagesUntilEverythingIsSeen(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pages map[string]string // page -> body
		want  int
	}{
		{"total reached", map[string]string{"1": `{"total":3,"list":[{"id":1},{"id":2}]}`, "2": `{"total":3,"list":[{"id":3}]}`}, 3},
		{"no total: until an empty page", map[string]string{"1": `[{"id":1},{"id":2}]`, "2": `[{"id":3}]`, "3": `[]`}, 3},
		{"server ignores paging", map[string]string{"1": `[{"id":1},{"id":2}]`, "2": `[{"id":1},{"id":2}]`}, 2},
		{"enveloped, nested", map[string]string{"1": `{"code":200,"msg":"ok","data":{"total":1,"list":[{"id":7}]}}`}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, ok := tc.pages[r.URL.Query().Get("page")]
				if !ok {
					b = `[]`
				}
				_, _ = w.Write([]byte(b))
			}))
			defer ts.Close()
			c, err := NewClient(&plan.Endpoint{Name: "t", URL: ts.URL}, plan.NewRedactor())
			if err != nil {
				t.Fatal(err)
			}
			got, err := listAll[User](t.Context(), c.As(nil), "list", "/v1/admin/user", nil)
			if err != nil || len(got) != tc.want {
				t.Fatalf("%d users, err %v", len(got), err)
			}
		})
	}
}
