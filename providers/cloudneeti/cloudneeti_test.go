package cloudneeti

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"provision/plan"
	"provision/providers"
	"provision/providers/cloudneeti/cnfake"
	"provision/providers/fault"
	"provision/providers/lifecycletest"
	"provision/state"
)

// Canary secrets: they must never appear in an error or a log line.
const (
	apiKey      = "cn-api-key-canary-5521"
	appSecret   = "cn-app-secret-canary-8812"
	azureSecret = "azure-secret-canary-4409"
	license     = "lic-test-1"
	appID       = "app-test-1"
)

func getenv(k string) (string, bool) {
	switch k {
	case "CN_KEY":
		return apiKey, true
	case "CN_SECRET":
		return appSecret, true
	case "AZ_SECRET":
		return azureSecret, true
	case "AZ_SECRET_ROTATED":
		return "azure-secret-rotated-canary-4410", true
	}
	return "", false
}

const basePlan = `version: 1
name: cn-test
vars: {url: "http://127.0.0.1:1"}
endpoints:
  cn:
    kind: cloudneeti
    url: ${var.url}
    auth: AUTH
cloudneeti_accounts:
  defaults: {endpoint: cn}
  items:
    - name: acct-1
      FIELDS
`

const (
	goodAuth  = `{api_key: "${env.CN_KEY}", license_id: lic-test-1, client_id: app-test-1, client_secret: "${env.CN_SECRET}"}`
	awsFields = "cloud: aws\n      aws: {account_id: \"123456789012\", role_name: CloudneetiReadOnly}"
	azFields  = "cloud: azure\n      azure: {domain_name: contoso.onmicrosoft.com, tenant_id: 0f0e0d0c-0b0a-4909-8807-060504030201, application_client_id: 1a2b3c4d-5e6f-4a0b-9c8d-7e6f5a4b3c2d, application_client_secret: \"${env.AZ_SECRET}\", subscription_id: 9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a}"
)

func fakeOptions() cnfake.Options {
	return cnfake.Options{
		SubscriptionKeys: []string{apiKey},
		Licenses:         []cnfake.License{{ID: license, Apps: []cnfake.App{{ID: appID, Secret: appSecret}}}},
		JobDelay:         60 * time.Millisecond,
	}
}

func newFake(t *testing.T, mut func(*cnfake.Options)) (*cnfake.Server, string) {
	t.Helper()
	o := fakeOptions()
	if mut != nil {
		mut(&o)
	}
	srv := cnfake.New(o)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return srv, ts.URL
}

func build(t *testing.T, url, auth string, fields ...string) (*providers.Task, error) {
	t.Helper()
	if len(fields) == 0 {
		fields = []string{awsFields}
	}
	text := strings.NewReplacer("AUTH", auth, "FIELDS", strings.Join(fields, "\n      ")).Replace(basePlan)
	p := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	pl, err := plan.Load(p, plan.LoadOptions{Sections: []string{Section}, EndpointKinds: []plan.EndpointKind{endpointKind}, Vars: map[string]string{"url": url}, Getenv: getenv})
	if err != nil {
		return nil, err
	}
	ts, err := AccountKind{}.Build(&providers.Build{Plan: pl, Clients: &providers.Clients{}}, pl.Items[0])
	if err != nil {
		return nil, err
	}
	fast(ts[0])
	return ts[0], nil
}

func fast(t *providers.Task) {
	c := t.Action.(*account).c
	c.PollEvery, c.PollFor = 10*time.Millisecond, 5*time.Second
}

func mustBuild(t *testing.T, url string, fields ...string) *providers.Task {
	t.Helper()
	task, err := build(t, url, goodAuth, fields...)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

func checkFake(t *testing.T, srv *cnfake.Server, accounts, onboarded int) cnfake.Snapshot {
	t.Helper()
	if err := srv.Check(); err != nil {
		t.Fatal(err)
	}
	snap := srv.Snapshot()
	if n := len(snap.Accounts[license]); n != accounts || snap.Counters.Onboarded != onboarded {
		t.Fatalf("fake holds %d accounts after %d onboardings, want %d and %d: %+v", n, snap.Counters.Onboarded, accounts, onboarded, snap)
	}
	return snap
}

func TestAccount_Apply_OnboardsAccount(t *testing.T) {
	for _, tc := range []struct {
		name      string
		fields    []string
		mut       func(*cnfake.Options)
		wantConn  string
		wantScope bool
		rescan    bool
	}{
		{name: "aws", fields: []string{awsFields}, wantConn: "AWS", wantScope: true},
		{name: "aws, token at top level", fields: []string{awsFields}, mut: func(o *cnfake.Options) { o.TopLevelToken = true }, wantConn: "AWS", wantScope: true},
		{name: "azure", fields: []string{azFields}, wantConn: "Azure", wantScope: true},
		{name: "aws with rescan", fields: []string{awsFields, "rescan: true"}, wantConn: "AWS", wantScope: true, rescan: true},
		{name: "azure with rescan, errors in 200 envelopes", fields: []string{azFields, "rescan: true"}, mut: func(o *cnfake.Options) { o.ErrorsIn200 = true }, wantConn: "Azure", wantScope: true, rescan: true},
		{name: "outside the API scope", fields: []string{awsFields, "api_scope: false"}, wantConn: "AWS"},
		{name: "account name", fields: []string{awsFields, "account_name: Retail AWS"}, wantConn: "AWS", wantScope: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, url := newFake(t, tc.mut)
			out, saved, err := lifecycletest.ApplyOnce(t, mustBuild(t, url, tc.fields...), lifecycletest.Attempt{})
			if err != nil {
				t.Fatal(err)
			}
			snap := checkFake(t, srv, 1, 1)
			a := snap.Accounts[license][0]
			wantName := "acct-1"
			if tc.name == "account name" {
				wantName = "Retail AWS"
			}
			if a.Name != wantName || a.Connector != tc.wantConn || (len(a.Scope) == 1) != tc.wantScope {
				t.Errorf("account %+v", a)
			}
			if out[OutAccountID].Value != a.ID || saved[OutAccountID].Value != a.ID || saved[OutJobID].Value == "" || out[OutJobID] != saved[OutJobID] {
				t.Errorf("outputs %v checkpoints %v", out, saved)
			}
			if tc.rescan != (a.Rescans == 1) || tc.rescan != (out[OutRescanStatus].Value == "Success") || tc.rescan != (saved[OutRescanJobID].Value != "") {
				t.Errorf("rescans %d, outputs %v", a.Rescans, out)
			}
		})
	}
}

func TestAccount_Apply_RerunIsNoOp(t *testing.T) {
	srv, url := newFake(t, nil)
	task := mustBuild(t, url, awsFields, "rescan: true")
	out, saved, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []lifecycletest.Attempt{
		{Attempt: 2, Prior: saved},
		{Attempt: 2, InDoubt: true, Prior: saved},
		{Attempt: 3, Changed: true, Prior: saved},
		{Attempt: 2, InDoubt: true, Prior: state.Outputs{OutAccountID: saved[OutAccountID]}},
	} {
		again, _, err := lifecycletest.ApplyOnce(t, task, o)
		if err != nil {
			t.Fatalf("%+v: %v", o, err)
		}
		if again[OutAccountID] != out[OutAccountID] {
			t.Fatalf("rerun gave %v, first run %v", again, out)
		}
	}
	snap := checkFake(t, srv, 1, 1)
	// The last rerun had no rescan job checkpointed: it rescanned again (a rescan is
	// harmless); every other rerun polled the checkpointed job.
	if snap.Counters.ScopeAdds != 1 || snap.Counters.Rescans != 2 {
		t.Fatalf("counters %+v", snap.Counters)
	}
}

func TestAccount_Apply_AdoptsExistingAccount(t *testing.T) {
	srv, url := newFake(t, func(o *cnfake.Options) {
		o.Licenses[0].Accounts = []cnfake.Account{{ID: "acc-existing", Name: "acct-1", Connector: "AWS", CloudID: "123456789012"}}
	})
	out, saved, err := lifecycletest.ApplyOnce(t, mustBuild(t, url), lifecycletest.Attempt{})
	if err != nil {
		t.Fatal(err)
	}
	snap := checkFake(t, srv, 1, 0)
	if out[OutAccountID].Value != "acc-existing" || saved[OutAccountID].Value != "acc-existing" || out[OutJobID].Value != "" || snap.Counters.ScopeAdds != 1 {
		t.Fatalf("outputs %v, counters %+v", out, snap.Counters)
	}
}

func TestAccount_Apply_RefusesAccountOfOtherCloud(t *testing.T) {
	srv, url := newFake(t, func(o *cnfake.Options) {
		o.Licenses[0].Accounts = []cnfake.Account{{ID: "acc-az", Name: "acct-1", Connector: "Azure", CloudID: "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"}}
	})
	_, _, err := lifecycletest.ApplyOnce(t, mustBuild(t, url), lifecycletest.Attempt{})
	if err == nil || providers.IsRetryable(err) || !strings.Contains(err.Error(), "exists with connector Azure, not aws: refusing to adopt it") {
		t.Fatalf("err = %v", err)
	}
	checkFake(t, srv, 1, 0)
}

// The onboarding is applied and its answer lost: the next attempt, in doubt, finds
// the account by name and adopts it.
func TestAccount_Apply_AdoptsInDoubtOnboarding(t *testing.T) {
	for _, fields := range []string{awsFields, azFields} {
		srv, url := newFake(t, nil)
		task := mustBuild(t, url, fields)
		if _, _, err := task.Action.(providers.Prober).Probe(context.Background(), &providers.Exec{Task: task, Log: zerolog.Nop()}); err != nil {
			t.Fatal(err) // fetches the token first, so that the lost answer is the onboarding's
		}
		srv.Faults.Set(fault.Config{LostRate: 1, OnlyMutating: true})
		_, saved, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{})
		if !providers.IsRetryable(err) || !providers.MaybeApplied(err) {
			t.Fatalf("lost onboarding: err = %v, want retryable and maybe applied", err)
		}
		srv.Faults.Set(fault.Config{})
		out, _, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{Attempt: 2, InDoubt: true, Prior: saved})
		if err != nil {
			t.Fatal(err)
		}
		snap := checkFake(t, srv, 1, 1)
		if out[OutAccountID].Value != snap.Accounts[license][0].ID {
			t.Fatalf("outputs %v", out)
		}
	}
}

// Another process onboards the account between the lookup and the onboarding: the
// 409 adopts it.
func TestAccount_Apply_ConflictAdoptsAccount(t *testing.T) {
	srv := cnfake.New(fakeOptions())
	var lists atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/licenseAccounts") && lists.Add(1) == 2 {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"result": {"accounts": []}, "statusCode": 200, "message": "Request Successful"}`))
			return
		}
		srv.ServeHTTP(w, r)
	}))
	defer ts.Close()
	if _, _, err := lifecycletest.ApplyOnce(t, mustBuild(t, ts.URL), lifecycletest.Attempt{}); err != nil {
		t.Fatal(err)
	}
	out, _, err := lifecycletest.ApplyOnce(t, mustBuild(t, ts.URL), lifecycletest.Attempt{})
	if err != nil {
		t.Fatal(err)
	}
	snap := checkFake(t, srv, 1, 1)
	if snap.Counters.Conflicts != 1 || out[OutAccountID].Value != snap.Accounts[license][0].ID {
		t.Fatalf("conflicts %d, outputs %v", snap.Counters.Conflicts, out)
	}
}

// The process dies right after the rescan job id is checkpointed: the next run polls
// that job instead of starting another rescan.
func TestAccount_Apply_ResumesCheckpointedRescan(t *testing.T) {
	srv, url := newFake(t, func(o *cnfake.Options) { o.JobDelay = 200 * time.Millisecond })
	task := mustBuild(t, url, awsFields, "rescan: true")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, saved, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{Ctx: ctx, OnSave: func(o state.Outputs) {
		if o[OutRescanJobID].Value != "" {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) || saved[OutRescanJobID].Value == "" || saved[OutAccountID].Value == "" {
		t.Fatalf("err = %v, checkpoints %v", err, saved)
	}
	out, _, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{Attempt: 2, InDoubt: true, Prior: saved})
	if err != nil {
		t.Fatal(err)
	}
	snap := checkFake(t, srv, 1, 1)
	if snap.Counters.Rescans != 1 || out[OutRescanJobID] != saved[OutRescanJobID] || out[OutRescanStatus].Value != "Success" {
		t.Fatalf("rescans %d, outputs %v", snap.Counters.Rescans, out)
	}
}

func TestAccount_Apply_RescanJobs(t *testing.T) {
	t.Run("failed rescan is permanent and forgotten", func(t *testing.T) {
		srv, url := newFake(t, func(o *cnfake.Options) { o.FailRescans = true })
		_, saved, err := lifecycletest.ApplyOnce(t, mustBuild(t, url, awsFields, "rescan: true"), lifecycletest.Attempt{})
		if err == nil || providers.IsRetryable(err) || !errors.Is(err, ErrJobFailed) || !strings.Contains(err.Error(), "ended Failed") {
			t.Fatalf("err = %v", err)
		}
		if v, ok := saved[OutRescanJobID]; !ok || v.Value != "" {
			t.Fatalf("the failed job must be cleared: %v", saved)
		}
		checkFake(t, srv, 1, 1)
	})
	t.Run("unknown checkpointed job starts a new rescan", func(t *testing.T) {
		srv, url := newFake(t, nil)
		task := mustBuild(t, url, awsFields, "rescan: true")
		_, saved, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{})
		if err != nil {
			t.Fatal(err)
		}
		saved[OutRescanJobID] = state.Plain("job-that-expired")
		out, _, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{Attempt: 2, InDoubt: true, Prior: saved})
		if err != nil || out[OutRescanStatus].Value != "Success" || srv.Snapshot().Counters.Rescans != 2 {
			t.Fatalf("out %v err %v", out, err)
		}
	})
	t.Run("poll timeout is retryable and resumes", func(t *testing.T) {
		clk := &clock{}
		srv, url := newFake(t, func(o *cnfake.Options) { o.JobDelay, o.Now = time.Hour, clk.Now })
		task := mustBuild(t, url, awsFields, "rescan: true")
		task.Action.(*account).c.PollFor = 50 * time.Millisecond
		_, saved, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{})
		if !providers.IsRetryable(err) || !strings.Contains(err.Error(), "a rerun keeps waiting") {
			t.Fatalf("err = %v", err)
		}
		clk.Jump(time.Hour)
		task.Action.(*account).c.PollFor = 5 * time.Second
		if _, _, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{Attempt: 2, Prior: saved}); err != nil {
			t.Fatal(err)
		}
		if c := srv.Snapshot().Counters; c.Rescans != 1 || c.Onboarded != 1 {
			t.Fatalf("counters %+v", c)
		}
	})
}

func TestAccount_Apply_RenewsExpiredToken(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mut    func(*cnfake.Options)
		revoke bool
	}{
		{name: "lifetime", mut: func(o *cnfake.Options) { o.TokenLifetime = 300 * time.Millisecond }},
		{name: "revoked", revoke: true},
		{name: "401 inside a 200 envelope", mut: func(o *cnfake.Options) { o.ErrorsIn200 = true }, revoke: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, url := newFake(t, tc.mut)
			task := mustBuild(t, url)
			_, saved, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{})
			if err != nil {
				t.Fatal(err)
			}
			if tc.revoke {
				srv.RevokeTokens()
			} else {
				time.Sleep(400 * time.Millisecond)
			}
			if _, _, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{Attempt: 2, Prior: saved}); err != nil {
				t.Fatalf("after expiry: %v", err)
			}
			if c := srv.Snapshot().Counters; c.Tokens < 2 {
				t.Fatalf("tokens issued %d, want a renewal", c.Tokens)
			}
			checkFake(t, srv, 1, 1)
		})
	}
}

func TestAccount_Apply_ErrorAnswers(t *testing.T) {
	for _, tc := range []struct {
		name       string
		auth       string
		fields     []string
		mut        func(*cnfake.Options)
		spec       func(*Spec) // a value Build accepted (e.g. from an output reference)
		faults     fault.Config
		want       string
		retryable  bool
		retryAfter bool
	}{
		{name: "wrong subscription key 401", mut: func(o *cnfake.Options) { o.SubscriptionKeys = []string{"other"} }, want: "license token request: HTTP 401: Access denied due to invalid subscription key"},
		{name: "wrong subscription key 403", mut: func(o *cnfake.Options) { o.SubscriptionKeys = []string{"other"}; o.KeyDeniedStatus = 403 }, want: "HTTP 403: Access denied due to invalid subscription key"},
		{name: "wrong app secret", mut: func(o *cnfake.Options) { o.Licenses[0].Apps[0].Secret = "other" }, want: "license token request: HTTP 401: Invalid license, API application id or secret"},
		{name: "wrong app secret in a 200", mut: func(o *cnfake.Options) { o.Licenses[0].Apps[0].Secret = "other"; o.ErrorsIn200 = true }, want: "license token request: HTTP 401: Invalid license"},
		{name: "unknown license", mut: func(o *cnfake.Options) { o.Licenses[0].ID = "lic-other" }, want: "HTTP 401: Invalid license"},
		{name: "validation 400", spec: func(s *Spec) { s.AWS.AccountID = "12" }, want: `onboard aws account "acct-1": HTTP 400: Validation failed: AWSAccountId must be a 12-digit AWS account id`},
		{name: "validation 400 in a 200", mut: func(o *cnfake.Options) { o.ErrorsIn200 = true }, spec: func(s *Spec) { s.AWS.RoleName = "bad role" }, want: "HTTP 400: Validation failed: AWSRoleName"},
		{name: "cloud account onboarded under another name 409", mut: func(o *cnfake.Options) {
			o.Licenses[0].Accounts = []cnfake.Account{{ID: "acc-x", Name: "legacy", Connector: "AWS", CloudID: "123456789012"}}
		}, want: "HTTP 409: Cloud account 123456789012 is already onboarded as legacy (no account of this name is listed"},
		{name: "rescan outside the API scope 403", fields: []string{awsFields, "api_scope: false", "rescan: true"}, want: "HTTP 403: Account is not in the API application's scope"},
		{name: "500 answers", faults: fault.Config{ErrorRate: 1}, want: "HTTP 500", retryable: true},
		{name: "429 answers", faults: fault.Config{TooManyRate: 1, RetryAfter: 2 * time.Second}, want: "HTTP 429", retryable: true, retryAfter: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, url := newFake(t, tc.mut)
			srv.Faults.Set(tc.faults)
			if tc.auth == "" {
				tc.auth = goodAuth
			}
			task, err := build(t, url, tc.auth, tc.fields...)
			if err != nil {
				t.Fatal(err)
			}
			if tc.spec != nil {
				tc.spec(task.Spec.(*Spec))
			}
			var logs bytes.Buffer
			_, _, err = lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{Log: zerolog.New(&logs).Level(zerolog.DebugLevel)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if providers.IsRetryable(err) != tc.retryable {
				t.Errorf("retryable = %v, want %v", providers.IsRetryable(err), tc.retryable)
			}
			if tc.retryAfter && providers.RetryAfter(err) != 2*time.Second {
				t.Errorf("RetryAfter = %v", providers.RetryAfter(err))
			}
			for _, s := range []string{apiKey, appSecret, azureSecret} {
				if strings.Contains(err.Error(), s) || strings.Contains(logs.String(), s) {
					t.Errorf("a secret leaked: err %q, logs %q", err, logs.String())
				}
			}
		})
	}
}

func TestAccount_Build_RejectsBadFields(t *testing.T) {
	for _, tc := range []struct {
		name   string
		auth   string
		fields []string
		want   []string
	}{
		{name: "unknown field", fields: []string{awsFields, "rescna: true"}, want: []string{`unknown field "rescna"`}},
		{name: "no cloud", fields: []string{"api_scope: true"}, want: []string{"acct-1: cloud: required: aws or azure"}},
		{name: "bad cloud", fields: []string{"cloud: gcp"}, want: []string{`cloud: "gcp" must be aws or azure`}},
		{name: "aws block missing", fields: []string{"cloud: aws"}, want: []string{"acct-1: aws: required with cloud: aws"}},
		{name: "aws fields", fields: []string{"cloud: aws\n      aws: {account_id: \"1234\", role_name: \"bad role\"}"},
			want: []string{`aws.account_id: "1234" is not a 12-digit AWS account id`, `aws.role_name: "bad role" is not an IAM role name`}},
		{name: "aws account id as a number", fields: []string{"cloud: aws\n      aws: {account_id: 12345678901, role_name: r}"}, want: []string{`aws.account_id: "12345678901" is not a 12-digit`}},
		{name: "both blocks", fields: []string{awsFields, "azure: {domain_name: a.b}"}, want: []string{"azure: not allowed with cloud: aws"}},
		{name: "azure fields", fields: []string{"cloud: azure\n      azure: {domain_name: 'not a domain', tenant_id: x, application_client_id: y, subscription_id: z}"},
			want: []string{`azure.domain_name: "not a domain"`, `azure.tenant_id: "x" is not a UUID`, `azure.application_client_id: "y"`, `azure.subscription_id: "z"`, "azure.application_client_secret: required"}},
		{name: "account name", fields: []string{awsFields, "account_name: 'a<b>'"}, want: []string{`account_name: "a<b>" must be 1-100 characters`}},
		{name: "endpoint of another kind", fields: []string{awsFields, "endpoint: nope"}, want: []string{`endpoint "nope": no such endpoint`}},
		{name: "missing credentials", auth: `{license_id: lic}`, want: []string{"endpoint cn: auth.api_key: required", "auth.client_id: required", "auth.client_secret: required"}},
		{name: "auth type", auth: `{type: basic, api_key: "${env.CN_KEY}", license_id: l, client_id: c, client_secret: "${env.CN_SECRET}"}`, want: []string{`auth.type: "basic" is not supported`}},
		{name: "license id", auth: `{api_key: "${env.CN_KEY}", license_id: "a/b", client_id: c, client_secret: "${env.CN_SECRET}"}`, want: []string{`auth.license_id: "a/b" is not a license id`}},
		{name: "endpoint-wide account token", auth: `{api_key: "${env.CN_KEY}", license_id: l, client_id: c, client_secret: "${env.CN_SECRET}", account_id: acc-1}`, want: []string{"auth.account_id: not allowed: the client asks for the license token and for one account token per account itself"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.auth == "" {
				tc.auth = goodAuth
			}
			_, err := build(t, "http://127.0.0.1:1", tc.auth, tc.fields...)
			lifecycletest.CheckBuildError(t, err, "p.yaml", tc.want, apiKey, appSecret, azureSecret)
		})
	}
}

func TestAccount_Build_HashIgnoresSecretValues(t *testing.T) {
	a := mustBuild(t, "http://127.0.0.1:1", azFields)
	b := mustBuild(t, "http://127.0.0.1:1", strings.Replace(azFields, `"${env.AZ_SECRET}"`, `"${env.AZ_SECRET_ROTATED}"`, 1))
	c := mustBuild(t, "http://127.0.0.1:1", azFields, "api_scope: true")
	d := mustBuild(t, "http://127.0.0.1:1", azFields, "rescan: true")
	if a.Hash != b.Hash || a.Hash != c.Hash || a.Hash == d.Hash {
		t.Fatal("the hash must ignore secret values and explicit defaults, and follow rescan")
	}
}

// The example plan runs against the fake under faults, onboards its four accounts once
// and rescans one; a rerun is a no-op.
func TestAccount_ExamplePlan_AppliesOnceUnderFaults(t *testing.T) {
	o := cnfake.DemoOptions()
	o.SubscriptionKeys = []string{apiKey}
	o.Licenses[0].Apps[0].Secret = appSecret
	o.JobDelay = 40 * time.Millisecond
	o.Faults = fault.Config{ErrorRate: 0.1, LostRate: 0.1, DropRate: 0.05, Seed: 5}
	srv := cnfake.New(o)
	ts := httptest.NewServer(srv)
	defer ts.Close()
	env := map[string]string{"CLOUDNEETI_API_KEY": apiKey, "CLOUDNEETI_APP_SECRET": appSecret, "AZURE_APP_SECRET": azureSecret}
	pl, tasks := lifecycletest.ExamplePlan(t, "../../examples/plans/cloudneeti.yaml", AccountKind{},
		plan.LoadOptions{Sections: []string{Section}, EndpointKinds: []plan.EndpointKind{endpointKind}, Vars: map[string]string{"cloudneeti_url": ts.URL},
			Getenv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}, fast)
	if len(tasks) != 4 {
		t.Fatalf("%d tasks", len(tasks))
	}
	logs := lifecycletest.ApplyTwice(t, tasks, pl.Name, pl.Redactor, func() { srv.Faults.Set(fault.Config{}) })
	snap := srv.Snapshot()
	if err := srv.Check(); err != nil {
		t.Fatal(err)
	}
	accs := snap.Accounts[cnfake.DemoLicenseID]
	if len(accs) != 4 || snap.Counters.Onboarded != 4 {
		t.Fatalf("accounts %+v counters %+v", accs, snap.Counters)
	}
	for _, a := range accs {
		if len(a.Scope) != 1 || (a.Name == "AWS prod") != (a.Rescans >= 1) {
			t.Errorf("account %+v", a)
		}
	}
	for _, s := range []string{apiKey, appSecret, azureSecret} {
		if strings.Contains(logs, s) {
			t.Errorf("a secret reached the logs")
		}
	}
}

// clock is the fakes' clock (real time; Jump moves it forward).
type clock = lifecycletest.Clock

// Rescan and job status take the account's token, everything else the license
// token (Cloudneeti_SaaS_Docs tokenAPI.md, initiateScanAPI.md): the fake refuses the
// wrong kind with 401. One token per (license, account) is fetched and shared, and
// each is renewed once after a 401.
func TestAccount_Apply_RescanUsesAccountToken(t *testing.T) {
	srv, url := newFake(t, nil)
	task := mustBuild(t, url, awsFields, "rescan: true")
	c := task.Action.(*account).c
	out, saved, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{})
	if err != nil || out[OutRescanStatus].Value != "Success" {
		t.Fatalf("out %v err %v", out, err)
	}
	acc := out[OutAccountID].Value
	if c.Fetches("") != 1 || c.Fetches(acc) != 1 || srv.Snapshot().Counters.Tokens != 2 {
		t.Fatalf("tokens: license %d, account %d, issued %d; want one of each", c.Fetches(""), c.Fetches(acc), srv.Snapshot().Counters.Tokens)
	}
	// A second rescan of the same account reuses both tokens.
	saved[OutRescanJobID], saved[OutRescanStatus] = state.Plain(""), state.Plain("")
	if _, _, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{Attempt: 2, Changed: true, Prior: saved}); err != nil {
		t.Fatal(err)
	}
	if c.Fetches("") != 1 || c.Fetches(acc) != 1 {
		t.Fatalf("tokens after a second rescan: license %d, account %d", c.Fetches(""), c.Fetches(acc))
	}
	// Revoked tokens: each kind is renewed once, and the rescan still goes through.
	srv.RevokeTokens()
	if _, _, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{Attempt: 3, Changed: true, Prior: saved}); err != nil {
		t.Fatal(err)
	}
	if c.Fetches("") != 2 || c.Fetches(acc) != 2 {
		t.Fatalf("tokens after revocation: license %d, account %d; want 2 and 2", c.Fetches(""), c.Fetches(acc))
	}
	if snap := checkFake(t, srv, 1, 1); snap.Counters.Rescans != 3 {
		t.Fatalf("rescans %d", snap.Counters.Rescans)
	}
}

// A token whose exp claim has passed is renewed before it is used, without a 401
// first; an exp already past when the token arrives (a skewed clock) is ignored.
func TestAccount_Apply_RenewsTokensOnExpiry(t *testing.T) {
	clk := &clock{}
	o := fakeOptions()
	o.Now = clk.Now // tokens live an hour on the fake's clock
	srv := cnfake.New(o)
	var unauthorized atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		srv.ServeHTTP(rec, r)
		if rec.status == http.StatusUnauthorized {
			unauthorized.Add(1)
		}
	}))
	defer ts.Close()
	task := mustBuild(t, ts.URL, awsFields, "rescan: true")
	c := task.Action.(*account).c
	c.tokens.now = clk.Now
	out, saved, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{})
	if err != nil {
		t.Fatal(err)
	}
	acc := out[OutAccountID].Value
	clk.Jump(2 * time.Hour)
	saved[OutRescanJobID], saved[OutRescanStatus] = state.Plain(""), state.Plain("")
	if _, _, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{Attempt: 2, Changed: true, Prior: saved}); err != nil {
		t.Fatal(err)
	}
	if c.Fetches("") != 2 || c.Fetches(acc) != 2 || unauthorized.Load() != 0 {
		t.Fatalf("tokens: license %d, account %d, 401 answers %d; want each renewed once before use", c.Fetches(""), c.Fetches(acc), unauthorized.Load())
	}
	if !TokenExpiry("not-a-jwt").IsZero() {
		t.Fatal("an opaque token has no expiry")
	}
	// The client's clock runs three hours ahead: every new token looks expired on
	// arrival; its exp is ignored instead of fetching a token per call.
	c2 := mustBuild(t, ts.URL, awsFields, "rescan: true").Action.(*account).c
	c2.tokens.now = func() time.Time { return clk.Now().Add(3 * time.Hour) }
	if _, err := c2.Accounts(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Accounts(context.Background()); err != nil || c2.Fetches("") != 1 {
		t.Fatalf("skewed clock: %d license tokens, err %v", c2.Fetches(""), err)
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(s int) { r.status = s; r.ResponseWriter.WriteHeader(s) }
