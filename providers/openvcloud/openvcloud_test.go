package openvcloud

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
	"provision/providers/fault"
	"provision/providers/openvcloud/ovcfake"
	"provision/state"
)

const secret = "ovc-secret-canary-3391"

const testPlan = `version: 1
name: ovc-test
vars: {url: "http://127.0.0.1:1"}
endpoints:
  ovc:
    kind: openvcloud
    url: ${var.url}
    auth: AUTH
openvcloud_cloudspaces:
  defaults: {endpoint: ovc, account_id: 42, location: be-gen-1}
  items:
    - name: space-1
      ASYNC
`

const jwtAuth = `{client_id: app, client_secret: "${env.OVC_SECRET}", token_url: "${var.url}/v1/oauth/access_token"}`
const sessionAuth = `{type: session, username: ops, password: "${env.OVC_SECRET}"}`

func fakeOpts() ovcfake.Options {
	o := ovcfake.Demo()
	o.ClientID, o.ClientSecret, o.Username, o.Password = "app", secret, "ops", secret
	o.AsyncDelay = 50 * time.Millisecond
	return o
}

func build(t *testing.T, url, auth, async string) (*providers.Task, error) {
	t.Helper()
	text := strings.NewReplacer("AUTH", auth, "ASYNC", async).Replace(testPlan)
	p := filepath.Join(t.TempDir(), "p.yaml")
	os.WriteFile(p, []byte(text), 0o600)
	pl, err := plan.Load(p, plan.LoadOptions{Sections: []string{Section}, Vars: map[string]string{"url": url},
		Getenv: func(string) (string, bool) { return secret, true }})
	if err != nil {
		return nil, err
	}
	ts, err := Kind{}.Build(&providers.Build{Plan: pl, Clients: &providers.Clients{}}, pl.Items[0])
	if err != nil {
		return nil, err
	}
	ts[0].Action.(*action).c.PollEvery = 20 * time.Millisecond
	return ts[0], nil
}

func run(t *testing.T, task *providers.Task, attempt int, inDoubt bool, prior state.Outputs) (state.Outputs, state.Outputs, error) {
	saved := state.Outputs{}
	for k, v := range prior {
		saved[k] = v
	}
	x := &providers.Exec{Task: task, Attempt: attempt, InDoubt: inDoubt, Prior: prior, Log: zerolog.Nop(), Redactor: plan.NewRedactor(),
		CheckpointFunc: func(o state.Outputs) error {
			for k, v := range o {
				saved[k] = v
			}
			return nil
		}}
	out, err := task.Action.Apply(context.Background(), x)
	return out, saved, err
}

func TestCloudSpace_Apply(t *testing.T) {
	for _, tc := range []struct{ name, auth, async string }{
		{"jwt async", jwtAuth, "async: true"},
		{"session async", sessionAuth, "async: true"},
		{"jwt sync", jwtAuth, "async: false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := ovcfake.New(fakeOpts())
			ts := httptest.NewServer(srv)
			defer ts.Close()
			task, err := build(t, ts.URL, tc.auth, tc.async)
			if err != nil {
				t.Fatal(err)
			}
			out, saved, err := run(t, task, 1, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			if out["cloudspace_id"].Value == "" || (tc.async == "async: true" && saved["task_guid"].Value == "") {
				t.Fatalf("outputs %v saved %v", out, saved)
			}
			// Rerun after a crash at every point: nothing is created again.
			if _, _, err := run(t, task, 2, true, state.Outputs{"task_guid": saved["task_guid"]}); err != nil {
				t.Fatal(err)
			}
			if _, _, err := run(t, task, 3, true, nil); err != nil {
				t.Fatal(err)
			}
			spaces, c := srv.Snapshot()
			if len(spaces) != 1 || c.Creates != 1 || len(srv.Duplicates()) != 0 {
				t.Fatalf("spaces %v counters %+v", spaces, c)
			}
		})
	}
}

func TestCloudSpace_Apply_LostAnswersNeverDuplicate(t *testing.T) {
	o := fakeOpts()
	o.Faults = fault.Config{LostRate: 1, OnlyMutating: true}
	srv := ovcfake.New(o)
	ts := httptest.NewServer(srv)
	defer ts.Close()
	task, err := build(t, ts.URL, sessionAuth, "async: false")
	if err != nil {
		t.Fatal(err)
	}
	// Every POST is applied and its answer lost (the token request too, first).
	var prior state.Outputs
	for attempt := 1; attempt <= 6; attempt++ {
		if attempt == 4 {
			srv.Faults.Set(fault.Config{})
		}
		_, saved, err := run(t, task, attempt, attempt > 1, prior)
		prior = saved
		if err == nil {
			break
		}
		if !providers.IsRetryable(err) {
			t.Fatalf("attempt %d: %v is not retryable", attempt, err)
		}
	}
	if spaces, c := srv.Snapshot(); len(spaces) != 1 || len(srv.Duplicates()) != 0 {
		t.Fatalf("spaces %v counters %+v", spaces, c)
	}
}

func TestCloudSpace_Apply_ExpiredCredentialsAreRenewed(t *testing.T) {
	for _, auth := range []string{jwtAuth, sessionAuth} {
		o := fakeOpts()
		o.TokenLifetime = 300 * time.Millisecond
		srv := ovcfake.New(o)
		ts := httptest.NewServer(srv)
		task, err := build(t, ts.URL, auth, "async: true")
		if err != nil {
			t.Fatal(err)
		}
		out, _, err := run(t, task, 1, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(400 * time.Millisecond)
		if _, _, err := run(t, task, 2, false, out); err != nil {
			t.Fatalf("after expiry: %v", err)
		}
		ts.Close()
	}
}

func TestCloudSpace_Apply_ErrorAnswers(t *testing.T) {
	srv := ovcfake.New(fakeOpts())
	ts := httptest.NewServer(srv)
	defer ts.Close()
	for _, tc := range []struct{ name, from, to, want string }{
		{"unknown account", "account_id: 42", "account_id: 7", "Account with id 7 does not exist"},
		{"unknown location", "location: be-gen-1", "location: mars-1", "Location mars-1 does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := strings.Replace(testPlan, tc.from, tc.to, 1)
			p := filepath.Join(t.TempDir(), "p.yaml")
			os.WriteFile(p, []byte(strings.NewReplacer("AUTH", sessionAuth, "ASYNC", "async: true").Replace(text)), 0o600)
			pl, err := plan.Load(p, plan.LoadOptions{Sections: []string{Section}, Vars: map[string]string{"url": ts.URL}, Getenv: func(string) (string, bool) { return secret, true }})
			if err != nil {
				t.Fatal(err)
			}
			tasks, err := Kind{}.Build(&providers.Build{Plan: pl, Clients: &providers.Clients{}}, pl.Items[0])
			if err != nil {
				t.Fatal(err)
			}
			tasks[0].Action.(*action).c.PollEvery = 20 * time.Millisecond
			_, _, err = run(t, tasks[0], 1, false, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) || providers.IsRetryable(err) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestCloudSpace_Build_RejectsBadFields(t *testing.T) {
	for _, tc := range []struct{ async, want string }{
		{"private_network: 10.0.0.0/33", `private_network: "10.0.0.0/33" is not a CIDR`},
		{"type: bridge", `type: "bridge" must be routeros or vgw`},
		{"max_cpu_capacity: -5", "max_cpu_capacity: -5"},
		{"acount_id: 1", `unknown field "acount_id"`},
	} {
		_, err := build(t, "http://127.0.0.1:1", jwtAuth, tc.async)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v", tc.async, err)
		}
	}
	if _, err := build(t, "http://127.0.0.1:1", `{type: session, username: ops}`, "async: true"); err == nil || !strings.Contains(err.Error(), "username and password are required") {
		t.Errorf("session without password: %v", err)
	}
}

func TestJWTExpiry(t *testing.T) {
	if !jwtExpiry("a.eyJleHAiOjE3MDAwMDAwMDB9.c").Equal(time.Unix(1700000000, 0)) || !jwtExpiry("garbage").IsZero() {
		t.Error("jwt exp parsing")
	}
}

func FuzzJWTExpiry(f *testing.F) {
	f.Add("a.eyJleHAiOjE3MDAwMDAwMDB9.c")
	f.Add("..")
	f.Fuzz(func(t *testing.T, s string) { _ = jwtExpiry(s) })
}
