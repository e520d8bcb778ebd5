package cloudneeti

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"provision/plan"
	"provision/providers"
	"provision/providers/cloudneeti/cnfake"
	"provision/providers/fault"
	"provision/providers/rest"
	"provision/state"
)

var secrets = map[string]string{"CLOUDNEETI_API_KEY": "cn-key-canary-1234", "CLOUDNEETI_APP_SECRET": "cn-secret-canary-5678", "AZURE_APP_SECRET": "az-secret-canary-9012"}

func fakeFor(o cnfake.Options) *cnfake.Server {
	o.License, o.AppID = "lic-demo-0001", "app-demo-0001"
	o.SubscriptionKey, o.Secret = secrets["CLOUDNEETI_API_KEY"], secrets["CLOUDNEETI_APP_SECRET"]
	if o.JobDelay == 0 {
		o.JobDelay = 20 * time.Millisecond
	}
	return cnfake.New(o)
}

func buildAll(t *testing.T, text, url string) (map[string]*providers.Task, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "p.yaml")
	os.WriteFile(p, []byte(text), 0o600)
	pl, err := plan.Load(p, plan.LoadOptions{Sections: []string{Section}, Vars: map[string]string{"cloudneeti_url": url},
		Getenv: func(k string) (string, bool) { v, ok := secrets[k]; return v, ok }})
	if err != nil {
		return nil, err
	}
	b := &providers.Build{Plan: pl, Clients: &providers.Clients{}}
	out := map[string]*providers.Task{}
	var errs []string
	for _, it := range pl.Items {
		ts, err := Kind{}.Build(b, it)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		ts[0].Action.(*action).c.PollEvery = 20 * time.Millisecond
		out[ts[0].ID] = ts[0]
	}
	if len(errs) > 0 {
		return nil, errString(strings.Join(errs, "\n"))
	}
	return out, nil
}

type errString string

func (e errString) Error() string { return string(e) }

func example(t *testing.T) string {
	b, err := os.ReadFile("../../examples/plans/cloudneeti.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func run(t *testing.T, task *providers.Task, attempt int, prior state.Outputs) (state.Outputs, error) {
	x := &providers.Exec{Task: task, Attempt: attempt, InDoubt: attempt > 1, Prior: prior, Log: zerolog.Nop(), Redactor: plan.NewRedactor(),
		CheckpointFunc: func(state.Outputs) error { return nil }}
	return task.Action.Apply(context.Background(), x)
}

func TestAccounts_Apply_OnboardsScopesRescansOnce(t *testing.T) {
	for _, top := range []bool{false, true} {
		srv := fakeFor(cnfake.Options{TopLevelToken: top})
		ts := httptest.NewServer(srv)
		tasks, err := buildAll(t, example(t), ts.URL)
		if err != nil {
			t.Fatal(err)
		}
		for id, task := range tasks {
			out, err := run(t, task, 1, nil)
			if err != nil {
				t.Fatalf("%s: %v", id, err)
			}
			if id == "aws-prod" && out["rescan_status"].Value != "Success" {
				t.Errorf("rescan: %v", out)
			}
			// Rerun: adopts, no second onboarding.
			if _, err := run(t, task, 2, out); err != nil {
				t.Fatalf("%s rerun: %v", id, err)
			}
		}
		accs, c := srv.Snapshot()
		if len(accs) != 4 || c.Onboarded != 4 || c.ScopeAdds != 4 || len(srv.Duplicates()) != 0 {
			t.Fatalf("top-level token %v: accounts %v counters %+v", top, accs, c)
		}
		for _, a := range accs {
			if !a.InAPIScope {
				t.Errorf("%s not in scope", a.Name)
			}
		}
		ts.Close()
	}
}

func TestAccounts_Apply_LostAnswerIsAdopted(t *testing.T) {
	srv := fakeFor(cnfake.Options{Faults: fault.Config{LostRate: 1, OnlyMutating: true}})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	tasks, err := buildAll(t, example(t), ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	task := tasks["aws-staging"]
	if _, err := run(t, task, 1, nil); err == nil || !providers.MaybeApplied(err) {
		// The token request is a POST too: the first lost answer may be the token's.
		t.Logf("first attempt: %v", err)
	}
	srv.Faults.Set(fault.Config{})
	if _, err := run(t, task, 2, nil); err != nil {
		t.Fatal(err)
	}
	if accs, _ := srv.Snapshot(); len(accs) != 1 || len(srv.Duplicates()) != 0 {
		t.Fatalf("accounts %v", accs)
	}
}

func TestAccounts_Apply_WrongSubscriptionKeyIsClear(t *testing.T) {
	srv := fakeFor(cnfake.Options{})
	srv.SetCredentials("lic-demo-0001", "another-key", "app-demo-0001", secrets["CLOUDNEETI_APP_SECRET"])
	ts := httptest.NewServer(srv)
	defer ts.Close()
	tasks, err := buildAll(t, example(t), ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	_, err = run(t, tasks["aws-dev"], 1, nil)
	if err == nil || !strings.Contains(err.Error(), "invalid subscription key") || providers.IsRetryable(err) {
		t.Fatalf("err = %v", err)
	}
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			t.Fatal("secret in error")
		}
	}
}

func TestAccounts_Apply_ExpiredTokenIsReissued(t *testing.T) {
	srv := fakeFor(cnfake.Options{TokenLifetime: 200 * time.Millisecond})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	tasks, err := buildAll(t, example(t), ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, tasks["aws-dev"], 1, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := run(t, tasks["aws-staging"], 1, nil); err != nil {
		t.Fatal(err)
	}
	if _, c := srv.Snapshot(); c.Tokens != 2 {
		t.Errorf("tokens issued %d, want 2", c.Tokens)
	}
}

func TestAccounts_Build_RejectsBadFields(t *testing.T) {
	base := example(t)
	for _, tc := range []struct{ from, to, want string }{
		{`id: "111111111111"`, `id: "1111"`, `aws.account_id: "1111" is not a 12-digit AWS account id`},
		{"tenant_id: 0f0e0d0c-0b0a-4909-8807-060504030201", "tenant_id: tenant", `azure.tenant_id: "tenant" is not a UUID`},
		{"cloud: azure", "cloud: gcp", `cloud: "gcp" must be aws or azure`},
		{"license_id: ${var.license}", "", "license_id required"},
	} {
		text := strings.Replace(base, tc.from, tc.to, 1)
		_, err := buildAll(t, text, "http://127.0.0.1:1")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v", tc.to, err)
		}
	}
}

func FuzzResult(f *testing.F) {
	for _, s := range []string{`{"result":{"token":"x"},"statusCode":200}`, `{"token":"x"}`, `{"statusCode":"500","message":"m"}`, `<html>`, `[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var v struct {
			Token string `json:"token"`
		}
		_ = result(&rest.Response{Status: 200, Body: b}, "op", &v)
	})
}
