package edge

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"provision/providers"
	"provision/providers/edge/edgefake"
)

// The application lookup (GET /v1/app, GET /v1/app/{id}) is an inference. On a
// platform that answers it 404 or 405, a create that no earlier attempt can have
// made goes ahead (the lookup must not block it), and a task whose application may
// exist fails in doubt instead of creating a second one.
func TestApp_Apply_LookupNotServedFailsSafe(t *testing.T) {
	for _, style := range answerStyles {
		for _, status := range []int{http.StatusNotFound, http.StatusMethodNotAllowed} {
			opts := style.opts
			opts.AppLookup = status
			appLookupCase(t, style.name+"/"+strconv.Itoa(status), opts)
		}
	}
}

func appLookupCase(t *testing.T, name string, opts edgefake.Options) {
	status := opts.AppLookup
	t.Run(name, func(t *testing.T) {
		w := newWorld(t, opts)
		w.build(testPlan)
		w.mustApply("retail-admin", "retail", "retail-registry")
		out, saved, err := w.apply("people-counter", 1, false)
		if err != nil {
			t.Fatalf("fresh create: %v", err)
		}
		snap := w.srv.Snapshot()
		if len(snap.Apps) != 1 || out["app_id"].Value != strconv.Itoa(snap.Apps[0].ID) || saved["app_id"] != out["app_id"] {
			t.Fatalf("apps %+v outputs %v saved %v", snap.Apps, out, saved)
		}
		// The client learnt that the lookup is not served: one probe in all.
		wantGets := 2 // the filtered list, then one unfiltered page
		if status == http.StatusMethodNotAllowed {
			wantGets = 1
		}
		if n := len(w.callsTo(http.MethodGet, "/v1/app")); n != wantGets {
			t.Fatalf("%d lookups, want %d", n, wantGets)
		}
		// In doubt with the id checkpointed: the id cannot be read either.
		_, _, err = w.applyWith("people-counter", 2, true, out)
		checkInDoubt(t, err)
		if n := w.srv.Snapshot().Counters.AppsCreated; n != 1 {
			t.Fatalf("%d applications created, want 1", n)
		}
	})
	t.Run(name+" lost answer", func(t *testing.T) {
		w := newWorld(t, opts)
		w.build(testPlan)
		w.mustApply("retail-admin", "retail", "retail-registry")
		w.loseAnswers(http.MethodPost, "/v1/app")
		_, _, err := w.apply("people-counter", 1, false)
		w.loseAnswers("", "")
		if err == nil || !providers.MaybeApplied(err) {
			t.Fatalf("first attempt: %v, want a maybe-applied failure", err)
		}
		_, _, err = w.apply("people-counter", 2, true)
		checkInDoubt(t, err)
		if n := len(w.callsTo(http.MethodPost, "/v1/app")); n != 1 {
			t.Fatalf("%d creates, want 1 (none blind)", n)
		}
		w.noDuplicates()
	})
}

func checkInDoubt(t *testing.T, err error) {
	t.Helper()
	if err == nil || !errors.Is(err, providers.ErrInDoubt) || !errors.Is(err, ErrNoAppLookup) || providers.IsRetryable(err) || !providers.MaybeApplied(err) {
		t.Fatalf("err = %v: want a permanent in-doubt failure that stays maybe-applied", err)
	}
	if !strings.Contains(err.Error(), "check on the platform by hand") {
		t.Fatalf("err = %v: want it to say what to do", err)
	}
}

// A 404 to the filtered list while the unfiltered list is served means "no match":
// the application is created, and later lookups find it.
func TestApp_Apply_NoMatch404IsAbsent(t *testing.T) {
	w := newWorld(t, edgefake.Options{AppNoMatch404: true})
	w.build(testPlan)
	w.mustApply("retail-admin", "retail", "retail-registry")
	out, _, err := w.apply("people-counter", 1, false)
	if err != nil {
		t.Fatal(err)
	}
	again, _, err := w.apply("people-counter", 2, true)
	if err != nil || again["app_id"] != out["app_id"] {
		t.Fatalf("in-doubt rerun: %v %v", again, err)
	}
	if n := w.srv.Snapshot().Counters.AppsCreated; n != 1 {
		t.Fatalf("%d applications created", n)
	}
}

// With business set, a registry is created and read by that business's
// administrator, after the business (whether records are per business is an
// inference).
func TestRegistry_Apply_BusinessAdminCreatesIt(t *testing.T) {
	w := newWorld(t, edgefake.Options{})
	w.build(strings.Replace(testPlan, "{name: retail-registry, endpoint: edge,", "{name: retail-registry, endpoint: edge, business: retail,", 1))
	if d := strings.Join(w.tasks["retail-registry"].Deps, ","); d != "retail" {
		t.Fatalf("deps %q, want the business", d)
	}
	w.mustApply("retail-admin", "retail", "retail-registry", "people-counter")
	snap := w.srv.Snapshot()
	admin, _ := snap.User("retail-admin")
	if len(snap.Registries) != 1 || snap.Registries[0].Owner != admin.ID {
		t.Fatalf("registries %+v, want one owned by retail-admin (id %d)", snap.Registries, admin.ID)
	}
	if _, _, err := w.apply("retail-registry", 2, true); err != nil {
		t.Fatal(err)
	}
	if n := w.srv.Snapshot().Counters.RegistriesCreated; n != 1 {
		t.Fatalf("%d registries created", n)
	}
	if err := w.tryBuild(strings.Replace(testPlan, "{name: retail-registry, endpoint: edge,", "{name: retail-registry, endpoint: edge, business: nope,", 1)); err == nil || !strings.Contains(err.Error(), "business") {
		t.Fatalf("unknown business: %v", err)
	}
}
