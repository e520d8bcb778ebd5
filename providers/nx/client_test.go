package nx

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"provision/plan"
	"provision/providers"
	"provision/providers/nx/nxfake"
	"provision/providers/rest"
)

func (e *env) cloud(t *testing.T, password string) *Cloud {
	t.Helper()
	c, err := NewCloud(&plan.Endpoint{Name: "nxcloud", URL: e.ts.URL, Auth: plan.Auth{Username: account, Password: plan.NewSecret(password)}}, plan.NewRedactor())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCloud_Bind_ErrorsAreClassified(t *testing.T) {
	for _, tc := range []struct {
		name               string
		f                  nxfake.Failure
		want               string
		retryable, applied bool
	}{
		{"500 dbError may have taken effect", nxfake.Failure{Status: 500, Code: "dbError", Text: "db down"}, "HTTP 500 dbError: db down", true, true},
		{"503 retryLater was not applied", nxfake.Failure{Status: 503, Code: "retryLater", Text: "later"}, "HTTP 503 retryLater: later", true, false},
		{"429 rate limited", nxfake.Failure{Status: 429, Code: "tooManyRequests", Text: "slow"}, "HTTP 429 tooManyRequests", true, false},
		{"400 badRequest", nxfake.Failure{Status: 400, Code: "invalidFormat", Text: "name is bad"}, "HTTP 400 invalidFormat: name is bad", false, false},
		{"403 notAllowedInCurrentState", nxfake.Failure{Status: 403, Code: "notAllowedInCurrentState", Text: "no"}, "notAllowedInCurrentState: no", false, false},
		{"403 alreadyExists", nxfake.Failure{Status: 403, Code: "alreadyExists", Text: "exists"}, "HTTP 403 alreadyExists: exists", false, false},
		{"401 twice: renewed once, then permanent", nxfake.Failure{Status: 401, Code: "notAuthorized", Text: "no", Times: 2}, "HTTP 401 notAuthorized", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nxfake.Options{})
			c := e.cloud(t, cloudPW)
			tc.f.Path = "/cdb/systems/bind"
			e.world.FailNext(tc.f)
			_, err := c.Bind(context.Background(), "s", "default", "")
			if err == nil || !strings.Contains(err.Error(), tc.want) || providers.IsRetryable(err) != tc.retryable || providers.MaybeApplied(err) != tc.applied {
				t.Fatalf("err = %v (retryable %v applied %v), want %q %v %v", err, providers.IsRetryable(err), providers.MaybeApplied(err), tc.want, tc.retryable, tc.applied)
			}
		})
	}
}

func TestCloud_Token_WrongPasswordIsPermanentAndQuiet(t *testing.T) {
	e := newEnv(t, nxfake.Options{})
	c := e.cloud(t, "wrong-password-canary")
	_, err := c.Systems(context.Background(), "")
	if err == nil || providers.IsRetryable(err) || !strings.Contains(err.Error(), "badUsername: Wrong username or password") ||
		strings.Contains(err.Error(), "wrong-password-canary") {
		t.Fatalf("err = %v", err)
	}
}

func TestCloud_Token_RefreshGrantThenPasswordFallback(t *testing.T) {
	e := newEnv(t, nxfake.Options{})
	c := e.cloud(t, cloudPW)
	ctx := context.Background()
	if _, err := c.Systems(ctx, ""); err != nil {
		t.Fatal(err)
	}
	e.world.ExpireTokens()
	if _, err := c.Systems(ctx, ""); err != nil { // refresh grant
		t.Fatal(err)
	}
	e.world.ExpireTokens()
	e.world.FailNext(nxfake.Failure{Path: "/cdb/oauth2/token", Status: 401, Code: "notAuthorized", Text: "refresh token revoked"})
	if _, err := c.Systems(ctx, ""); err != nil { // refresh refused, password works
		t.Fatal(err)
	}
	if n := e.world.Snapshot().Counters.TokensIssued; n != 3 {
		t.Errorf("tokens issued %d, want 3", n)
	}
	if n := c.auth.Fetches(); n != 3 {
		t.Errorf("fetches %d, want 3", n)
	}
}

func TestCloud_Token_SharedByConcurrentCalls(t *testing.T) {
	e := newEnv(t, nxfake.Options{})
	c := e.cloud(t, cloudPW)
	done := make(chan error, 16)
	for i := 0; i < 16; i++ {
		go func() { _, err := c.Systems(context.Background(), ""); done <- err }()
	}
	for i := 0; i < 16; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if n := e.world.Snapshot().Counters.TokensIssued; n != 1 {
		t.Errorf("tokens issued %d, want 1", n)
	}
}

func TestServer_ErrorsAreClassified(t *testing.T) {
	for _, tc := range []struct {
		name      string
		f         nxfake.Failure
		want      string
		retryable bool
	}{
		{"422 missingParameter", nxfake.Failure{Status: 422, Code: "missingParameter", Text: "Missing required parameter: name"}, "HTTP 422 missingParameter: Missing required parameter: name", false},
		{"400 badRequest", nxfake.Failure{Status: 400, Code: "badRequest", Text: "bad"}, "HTTP 400 badRequest: bad", false},
		{"409 conflict", nxfake.Failure{Status: 409, Code: "conflict", Text: "busy"}, "HTTP 409 conflict", false},
		{"404 notFound", nxfake.Failure{Status: 404, Code: "notFound", Text: "no API"}, "HTTP 404 notFound", false},
		{"500 internalServerError", nxfake.Failure{Status: 500, Code: "internalServerError", Text: "boom"}, "HTTP 500 internalServerError: boom", true},
		{"503 serviceUnavailable", nxfake.Failure{Status: 503, Code: "serviceUnavailable", Text: "starting"}, "HTTP 503 serviceUnavailable: starting", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nxfake.Options{})
			tasks := e.build(onePlan)
			tc.f.Path = "/rest/v3/system/setup"
			e.world.FailNext(tc.f)
			_, _, err := apply(t, tasks["store-1"], call{})
			if err == nil || !strings.Contains(err.Error(), tc.want) || providers.IsRetryable(err) != tc.retryable {
				t.Fatalf("err = %v (retryable %v), want %q %v", err, providers.IsRetryable(err), tc.want, tc.retryable)
			}
		})
	}
}

func TestDecodeReply_OldStyleWrapper(t *testing.T) {
	for _, tc := range []struct {
		body, wantName, wantErr string
	}{
		{`{"name":"a"}`, "a", ""},
		{`{"error":"0","errorId":"ok","errorString":"","reply":{"name":"b"}}`, "b", ""},
		{`{"error":0,"reply":{"name":"c"}}`, "c", ""},
		{`{"error":"2","errorId":"forbidden","errorString":"Forbidden"}`, "", "forbidden: Forbidden"},
		{`<html><title>x</title></html>`, "", "unexpected answer"},
	} {
		var v struct {
			Name string `json:"name"`
		}
		err := decodeReply(&rest.Response{Status: 200, Header: http.Header{}, Body: []byte(tc.body)}, "op", &v)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: err = %v, want %q", tc.body, err, tc.wantErr)
			}
			continue
		}
		if err != nil || v.Name != tc.wantName {
			t.Errorf("%s: %v %q", tc.body, err, v.Name)
		}
	}
}

func TestInfo_SetUpAndBound(t *testing.T) {
	for _, tc := range []struct {
		local, cloud string
		setUp, bound bool
	}{
		{"", "", false, false},
		{"00000000-0000-0000-0000-000000000000", "", false, false},
		{"{00000000-0000-0000-0000-000000000000}", "{00000000-0000-0000-0000-000000000000}", false, false},
		{"{5d8e5a7b-0000-4000-8000-000000000001}", "", true, false},
		{"5d8e5a7b-0000-4000-8000-000000000001", "76cce8ca-d7c5-4172-93da-7f9749eb1db6", true, true},
	} {
		i := Info{LocalID: tc.local, CloudID: tc.cloud}
		if i.SetUp() != tc.setUp || i.Bound() != tc.bound {
			t.Errorf("%+v: setUp %v bound %v", tc, i.SetUp(), i.Bound())
		}
	}
}

func TestSessionExpired(t *testing.T) {
	h := http.Header{}
	h.Set("x-auth-result", "Auth_WrongSessionToken")
	if !sessionExpired(403, h, nil) || !sessionExpired(401, http.Header{}, nil) || sessionExpired(403, http.Header{}, nil) || sessionExpired(422, h, nil) {
		t.Error("expired-session detection is wrong")
	}
}

func TestCloudErrorDecoder_DetailNumberOrString(t *testing.T) {
	for _, b := range []string{
		`{"errorClass":"logicError","resultCode":"notFound","errorDetail":404,"errorText":"System not found"}`,
		`{"errorClass":"logicError","resultCode":"notFound","errorDetail":"404","errorText":"System not found"}`,
	} {
		code, msg := cloudErrorDecoder(404, http.Header{}, []byte(b))
		if code != "notFound" || msg != "System not found" {
			t.Errorf("%s: %q %q", b, code, msg)
		}
	}
	if code, msg := cloudErrorDecoder(503, http.Header{}, []byte(`{"errorClass":"ioError"}`)); code != "ioError" || msg != "Service Unavailable" {
		t.Errorf("class only: %q %q", code, msg)
	}
}

// fuzz seeds: real answers and broken ones.
var answerSeeds = []string{
	`{"systems":[{"id":"a","name":"b","status":"notActivated","ownerAccountEmail":"o@example.com"}]}`,
	`[{"id":"76cce8ca-d7c5-4172-93da-7f9749eb1db6","name":"s","customization":"default","status":"activated"}]`,
	`{"count":1,"results":[{"id":"x","name":"y"}]}`,
	`{"users":[{"accountEmail":"a@example.com","accessRole":"viewer","isEnabled":"true"}]}`,
	`[{"accountEmail":"a@example.com","accessRole":"viewer","isEnabled":1,"userRoleId":null}]`,
	`{"access_token":"nxcdb-1","refresh_token":"nxcdb-2","expires_in":"3600","expires_at":1700000000000,"token_type":"bearer"}`,
	`{"access_token":"nxcdb-1","expires_in":3600}`,
	`{"error":"0","errorId":"ok","errorString":"","reply":{"name":"s","localId":"{00000000-0000-0000-0000-000000000000}"}}`,
	`{"name":"s","localId":"5d8e5a7b-0000-4000-8000-000000000001","cloudId":"c"}`,
	`{"error":"403","errorId":"forbidden","errorString":"no"}`,
	`{"errorClass":"unauthorized","resultCode":"badUsername","errorDetail":12,"errorText":"x"}`,
	`<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>`,
	`{"systems":[{"id":`, `{"systems":"x"}`, `{"id":{"a":1}}`, `[1,2,3]`, `null`, `""`, `{"expires_in":"soon"}`,
	`{"errorText":"` + strings.Repeat("x", 5000) + `"}`,
}

func FuzzDecodeSystems(f *testing.F) {
	for _, s := range answerSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = decodeSystems(b)
		_, _ = decodeSystem(b)
	})
}

func FuzzDecodeShares(f *testing.F) {
	for _, s := range answerSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = decodeShares(b)
	})
}

func FuzzDecodeToken(f *testing.F) {
	for _, s := range answerSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if ta, err := decodeToken(b); err == nil && ta.AccessToken == "" {
			t.Fatal("accepted a token answer without a token")
		}
	})
}

func FuzzDecodeInfo(f *testing.F) {
	for _, s := range answerSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		resp := &rest.Response{Status: 200, Header: http.Header{}, Body: b}
		_, _ = decodeInfo(resp)
		_ = decodeReply(resp, "op", nil)
	})
}

func FuzzErrorDecoders(f *testing.F) {
	for _, s := range answerSeeds {
		f.Add(500, []byte(s))
	}
	f.Fuzz(func(t *testing.T, status int, b []byte) {
		for _, dec := range []func(int, http.Header, []byte) (string, string){cloudErrorDecoder, serverErrorDecoder} {
			code, msg := dec(status, http.Header{}, b)
			if len(code) > 100 || len(msg) > 400 {
				t.Fatalf("not clipped: %d %d", len(code), len(msg))
			}
		}
	})
}

// TestCloud_TimeoutsUseContext: a cancelled context stops a call at once.
func TestCloud_TimeoutsUseContext(t *testing.T) {
	e := newEnv(t, nxfake.Options{})
	c := e.cloud(t, cloudPW)
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	time.Sleep(time.Millisecond)
	if _, err := c.Systems(ctx, ""); err == nil {
		t.Fatal("a call with an expired context succeeded")
	}
}
