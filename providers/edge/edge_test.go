package edge

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"provision/providers"
	"provision/providers/edge/edgefake"
)

var answerStyles = []struct {
	name string
	opts edgefake.Options
}{
	{"plain JSON", edgefake.Options{}},
	{"envelope", edgefake.Options{Envelope: true}},
	{"errors as HTTP 200", edgefake.Options{ErrorsAsOK: true}},
}

func TestUser_Apply_RegistersApprovesAndRerunIsNoOp(t *testing.T) {
	for _, st := range answerStyles {
		t.Run(st.name, func(t *testing.T) {
			w := newWorld(t, st.opts)
			w.build(testPlan)
			out, saved, err := w.apply("retail-admin", 1, false)
			if err != nil {
				t.Fatal(err)
			}
			snap := w.srv.Snapshot()
			u, ok := snap.User("retail-admin")
			if !ok || u.Status != edgefake.Approved || !u.IsAdmin || u.Phone != "+31200000001" || u.RealName != "Retail Operations" {
				t.Fatalf("user %+v", u)
			}
			if out["user_id"].Value != strconv.Itoa(u.ID) || out["status"].Value != "1" || saved["user_id"].Value != out["user_id"].Value {
				t.Fatalf("outputs %v, checkpointed %v", out, saved)
			}
			// A rerun (lost state: attempt 1 again) and an in-doubt attempt change nothing.
			for _, inDoubt := range []bool{false, true} {
				if _, _, err := w.apply("retail-admin", 2, inDoubt); err != nil {
					t.Fatal(err)
				}
			}
			if c := w.srv.Snapshot().Counters; c.UsersRegistered != 1 || c.UserAudits != 1 {
				t.Fatalf("counters after reruns %+v", c)
			}
			w.noDuplicates()
		})
	}
}

func TestUser_Apply_SubUserIsCreatedByItsParentAfterTheBusiness(t *testing.T) {
	w := newWorld(t, edgefake.Options{})
	w.build(testPlan)
	deps := w.tasks["retail-operator"].Deps
	if strings.Join(deps, ",") != "retail-admin,retail" {
		t.Fatalf("sub-user deps = %v, want the parent and its business", deps)
	}
	w.mustApply("retail-admin", "retail", "retail-operator")
	snap := w.srv.Snapshot()
	op, _ := snap.User("retail-operator")
	admin, _ := snap.User("retail-admin")
	if op.Parent != admin.ID || op.Status != edgefake.Approved || op.Business == 0 || op.Business != admin.Business {
		t.Fatalf("sub-user %+v of %+v", op, admin)
	}
	if c := snap.Counters; c.SubUsersCreated != 1 || c.UsersRegistered != 1 {
		t.Fatalf("counters %+v", c)
	}
	if n := len(w.callsTo(http.MethodPost, "/v1/admin/user")); n != 1 {
		t.Fatalf("%d sub-user creates", n)
	}
}

func TestUser_Apply_AdoptsInDoubtCreate(t *testing.T) {
	for _, tc := range []struct{ name, item, path string }{
		{"registration", "retail-admin", "/v1/user"},
		{"sub-user", "retail-operator", "/v1/admin/user"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, edgefake.Options{})
			w.build(testPlan)
			if tc.item == "retail-operator" {
				w.mustApply("retail-admin", "retail")
			}
			w.loseAnswers(http.MethodPost, tc.path)
			_, _, err := w.apply(tc.item, 1, false)
			w.loseAnswers("", "")
			if err != nil && !providers.IsRetryable(err) {
				t.Fatalf("first attempt: %v", err)
			}
			out, _, err := w.apply(tc.item, 2, true)
			if err != nil {
				t.Fatal(err)
			}
			u, _ := w.srv.Snapshot().User(tc.item)
			if out["user_id"].Value != strconv.Itoa(u.ID) || u.Status != edgefake.Approved {
				t.Fatalf("outputs %v, user %+v", out, u)
			}
			if n := len(w.callsTo(http.MethodPost, tc.path)); n != 1 {
				t.Fatalf("%d creates, want 1", n)
			}
			w.noDuplicates()
		})
	}
}

func TestUser_Apply_ExistingUsers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		isAdmin bool
		status  int
		wantErr string
	}{
		{"pending user is approved", true, edgefake.Pending, ""},
		{"approved user is adopted", true, edgefake.Approved, ""},
		{"forbidden user is refused", true, edgefake.Forbidden, "is forbidden on the platform (status 3)"},
		{"not approved user is refused", true, edgefake.NotApproved, "is not approved on the platform (status 2)"},
		{"general user is not an administrator", false, edgefake.Approved, "exists on the platform as a general user, the plan wants a general administrator"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, edgefake.Options{})
			id := w.srv.SeedUser("retail-admin", retailPW, tc.isAdmin, tc.status)
			w.build(testPlan)
			out, _, err := w.apply("retail-admin", 1, false)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || providers.IsRetryable(err) {
					t.Fatalf("err = %v, want a permanent %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if out["user_id"].Value != strconv.Itoa(id) || out["status"].Value != "1" {
				t.Fatalf("outputs %v", out)
			}
			if c := w.srv.Snapshot().Counters; c.UsersRegistered != 0 {
				t.Fatalf("registered again: %+v", c)
			}
		})
	}
}

func TestBusiness_Apply_CreatesAsItsAdminAndApproves(t *testing.T) {
	for _, st := range answerStyles {
		t.Run(st.name, func(t *testing.T) {
			w := newWorld(t, st.opts)
			w.build(testPlan)
			w.mustApply("retail-admin")
			out, saved, err := w.apply("retail", 1, false)
			if err != nil {
				t.Fatal(err)
			}
			snap := w.srv.Snapshot()
			if len(snap.Businesses) != 1 {
				t.Fatalf("businesses %+v", snap.Businesses)
			}
			bz := snap.Businesses[0]
			admin, _ := snap.User("retail-admin")
			id := strconv.Itoa(bz.ID)
			if bz.Name != "retail" || bz.UserID != admin.ID || bz.Status != edgefake.Approved || bz.Comment != DefaultAuditComment || bz.Scale != "small" {
				t.Fatalf("business %+v", bz)
			}
			if out["business_id"].Value != id || out["namespace"].Value != "ns"+id || saved["business_id"].Value != id {
				t.Fatalf("outputs %v checkpointed %v", out, saved)
			}
			for _, c := range snap.Clusters {
				if len(c.Namespaces) != 1 || c.Namespaces[0] != "ns"+id {
					t.Fatalf("cluster %s namespaces %v", c.Name, c.Namespaces)
				}
			}
			for _, inDoubt := range []bool{false, true} {
				if _, _, err := w.apply("retail", 2, inDoubt); err != nil {
					t.Fatal(err)
				}
			}
			if c := w.srv.Snapshot().Counters; c.BusinessesCreated != 1 || c.BusinessAudits != 1 {
				t.Fatalf("counters %+v", c)
			}
			w.noDuplicates()
		})
	}
}

func TestBusiness_Apply_AdoptsInDoubtCreate(t *testing.T) {
	w := newWorld(t, edgefake.Options{Envelope: true})
	w.build(testPlan)
	w.mustApply("retail-admin")
	w.loseAnswers(http.MethodPost, "/v1/business")
	_, _, err := w.apply("retail", 1, false)
	w.loseAnswers("", "")
	if err != nil && !providers.IsRetryable(err) {
		t.Fatalf("first attempt: %v", err)
	}
	if _, _, err := w.apply("retail", 2, true); err != nil {
		t.Fatal(err)
	}
	snap := w.srv.Snapshot()
	if len(snap.Businesses) != 1 || snap.Businesses[0].Status != edgefake.Approved || snap.Counters.BusinessesCreated != 1 {
		t.Fatalf("businesses %+v counters %+v", snap.Businesses, snap.Counters)
	}
	w.noDuplicates()
}

func TestBusiness_Apply_RefusesBusinessOfAnotherUserOrDisapproved(t *testing.T) {
	for _, tc := range []struct {
		name    string
		seed    func(s *edgefake.Server)
		wantErr string
	}{
		{"another owner", func(s *edgefake.Server) {
			s.SeedUser("someone-else", "Someone123x", true, edgefake.Approved)
			s.SeedBusiness("retail", "someone-else", edgefake.Approved)
		}, "already exists on the platform"},
		{"disapproved", func(s *edgefake.Server) {
			s.SeedUser("retail-admin", retailPW, true, edgefake.Approved)
			s.SeedBusiness("retail", "retail-admin", edgefake.NotApproved)
		}, "was disapproved on the platform"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, edgefake.Options{})
			tc.seed(w.srv)
			w.build(testPlan)
			w.mustApply("retail-admin")
			_, _, err := w.apply("retail", 1, false)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || providers.IsRetryable(err) {
				t.Fatalf("err = %v, want a permanent %q", err, tc.wantErr)
			}
			if c := w.srv.Snapshot().Counters; c.BusinessesCreated != 0 || c.BusinessAudits != 0 {
				t.Fatalf("counters %+v", c)
			}
		})
	}
}

func TestClusterLabel_Apply_LabelsOnlyMissingClusters(t *testing.T) {
	w := newWorld(t, edgefake.Options{})
	w.build(strings.Replace(testPlan, "clusters: [cluster-a, cluster-b]", "clusters: [cluster-a]", 1))
	w.mustApply("label-eu")
	w.build(testPlan)
	out, _, err := w.apply("label-eu", 2, false)
	if err != nil {
		t.Fatal(err)
	}
	posts := w.callsTo(http.MethodPost, "/v1/cluster/label")
	if len(posts) != 2 {
		t.Fatalf("%d label calls", len(posts))
	}
	var body struct {
		ClusterName  []string `json:"clusterName"`
		ClusterLabel string   `json:"clusterLabel"`
	}
	if err := json.Unmarshal([]byte(posts[1].Body), &body); err != nil || strings.Join(body.ClusterName, ",") != "cluster-b" || body.ClusterLabel != "retail-eu" {
		t.Fatalf("second call %s (%v)", posts[1].Body, err)
	}
	// Everything labelled: a rerun sends nothing.
	if _, _, err := w.apply("label-eu", 3, true); err != nil {
		t.Fatal(err)
	}
	if n := len(w.callsTo(http.MethodPost, "/v1/cluster/label")); n != 2 || out["label"].Value != "retail-eu" {
		t.Fatalf("%d label calls, outputs %v", n, out)
	}
	for _, c := range w.srv.Snapshot().Clusters {
		if strings.Join(c.Labels, ",") != "retail-eu" {
			t.Fatalf("cluster %s labels %v", c.Name, c.Labels)
		}
	}
}

func TestNodeLabel_Apply_LabelsOnlyMissingNodes(t *testing.T) {
	w := newWorld(t, edgefake.Options{Envelope: true})
	w.build(strings.Replace(testPlan, "nodes: [edge-a1, edge-a2]", "nodes: [edge-a1]", 1))
	w.mustApply("gw-a")
	w.build(testPlan)
	if _, _, err := w.apply("gw-a", 2, false); err != nil {
		t.Fatal(err)
	}
	posts := w.callsTo(http.MethodPost, "/v1/node/label")
	if len(posts) != 2 || !strings.Contains(posts[1].Body, `"nodeName":["edge-a2"]`) {
		t.Fatalf("label calls %+v", posts)
	}
	if _, _, err := w.apply("gw-a", 3, true); err != nil {
		t.Fatal(err)
	}
	snap := w.srv.Snapshot()
	c, _ := snap.Cluster("cluster-a")
	for _, n := range c.Nodes {
		want := n.Name == "edge-a1" || n.Name == "edge-a2"
		if got := strings.Join(n.Labels, ",") == "camera-gateway"; got != want {
			t.Fatalf("node %s labels %v", n.Name, n.Labels)
		}
	}
	if snap.Counters.NodeLabelsAdded != 2 || len(w.callsTo(http.MethodPost, "/v1/node/label")) != 2 {
		t.Fatalf("counters %+v", snap.Counters)
	}
}

func TestRepoUser_Apply_AdoptsConflictAndInDoubtCreate(t *testing.T) {
	w := newWorld(t, edgefake.Options{})
	w.build(testPlan)
	w.loseAnswers(http.MethodPost, "/v1/repository/user")
	_, _, err := w.apply("ci-pusher", 1, false)
	w.loseAnswers("", "")
	if err == nil || !providers.IsRetryable(err) {
		t.Fatalf("lost answer: err = %v, want retryable", err)
	}
	out, _, err := w.apply("ci-pusher", 2, true)
	if err != nil {
		t.Fatal(err)
	}
	if out["user"].Value != "ci-pusher" || out["existed"].Value != "true" {
		t.Fatalf("outputs %v", out)
	}
	snap := w.srv.Snapshot()
	if snap.Counters.RepoUsersCreated != 1 || strings.Join(snap.RepoUsers, ",") != "ci-pusher" {
		t.Fatalf("repository users %v counters %+v", snap.RepoUsers, snap.Counters)
	}
}

func TestProject_Apply_CreatesAdoptsAndRefusesVisibilityChange(t *testing.T) {
	w := newWorld(t, edgefake.Options{})
	w.build(testPlan)
	// A project whose name contains ours: the substring filter must not match it.
	if _, err := w.adminConn().CreateProject(t.Context(), "retail-apps-old", true); err != nil {
		t.Fatal(err)
	}
	w.loseAnswers(http.MethodPost, "/v1/repository/project")
	_, _, err := w.apply("retail-apps", 1, false)
	w.loseAnswers("", "")
	if err == nil || !providers.IsRetryable(err) {
		t.Fatalf("lost answer: err = %v", err)
	}
	out, _, err := w.apply("retail-apps", 2, true)
	if err != nil {
		t.Fatal(err)
	}
	snap := w.srv.Snapshot()
	var id int
	for _, p := range snap.Projects {
		if p.Name == "retail-apps" {
			id = p.ID
		}
	}
	if out["project_id"].Value != strconv.Itoa(id) || snap.Counters.ProjectsCreated != 2 {
		t.Fatalf("outputs %v projects %+v", out, snap.Projects)
	}
	w.build(strings.Replace(testPlan, "public: false", "public: true", 1))
	_, _, err = w.apply("retail-apps", 3, false)
	if err == nil || !strings.Contains(err.Error(), "exists with public: false, the plan wants public: true") {
		t.Fatalf("err = %v", err)
	}
	w.noDuplicates()
}

func TestRegistry_Apply_CreatesAdoptsAndRefusesOtherAddress(t *testing.T) {
	w := newWorld(t, edgefake.Options{Envelope: true})
	w.build(testPlan)
	w.loseAnswers(http.MethodPost, "/v1/repository/third")
	_, _, err := w.apply("retail-registry", 1, false)
	w.loseAnswers("", "")
	if err != nil {
		// The lookup after the lost answer adopts at once; an error must be retryable.
		if !providers.IsRetryable(err) {
			t.Fatal(err)
		}
	}
	out, _, err := w.apply("retail-registry", 2, true)
	if err != nil || out["repository_id"].Value != "retail-registry" {
		t.Fatalf("outputs %v err %v", out, err)
	}
	snap := w.srv.Snapshot()
	if len(snap.Registries) != 1 || snap.Registries[0].Address != "registry.example.com" || snap.Counters.RegistriesCreated != 1 {
		t.Fatalf("registries %+v", snap.Registries)
	}
	w.build(strings.Replace(testPlan, "address: registry.example.com", "address: other.example.com", 1))
	_, _, err = w.apply("retail-registry", 3, false)
	if err == nil || !strings.Contains(err.Error(), `exists with address "registry.example.com"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestApp_Apply_CreatesInBusinessNamespace(t *testing.T) {
	for _, st := range answerStyles {
		t.Run(st.name, func(t *testing.T) {
			w := newWorld(t, st.opts)
			w.build(testPlan)
			if d := strings.Join(w.tasks["people-counter"].Deps, ","); d != "retail,retail-registry" {
				t.Fatalf("deps %s", d)
			}
			w.mustApply("retail-admin", "retail", "retail-registry")
			out, saved, err := w.apply("people-counter", 1, false)
			if err != nil {
				t.Fatal(err)
			}
			snap := w.srv.Snapshot()
			if len(snap.Apps) != 1 {
				t.Fatalf("apps %+v", snap.Apps)
			}
			a := snap.Apps[0]
			admin, _ := snap.User("retail-admin")
			if a.Name != "people-counter" || a.Owner != admin.ID || a.Namespace != "ns"+strconv.Itoa(admin.Business) || a.DeployType != "daemonset" ||
				a.RepositoryID != "retail-registry" || len(a.Port) != 1 || a.Port[0] != 8080 || strings.Join(a.Command, " ") != "/app/pc" ||
				strings.Join(a.Args, " ") != "--zones entrance" || len(a.Env) != 1 || a.Env[0] != (edgefake.EnvVar{Name: "LOG_LEVEL", Value: "info"}) ||
				a.Description != "counts visitors" {
				t.Fatalf("app %+v", a)
			}
			if out["app_id"].Value != strconv.Itoa(a.ID) || saved["app_id"].Value != out["app_id"].Value {
				t.Fatalf("outputs %v saved %v", out, saved)
			}
			if _, _, err := w.apply("people-counter", 2, true); err != nil {
				t.Fatal(err)
			}
			if w.srv.Snapshot().Counters.AppsCreated != 1 {
				t.Fatal("rerun created the application again")
			}
		})
	}
}

func TestApp_Apply_AdoptsInDoubtCreateWithoutDuplicate(t *testing.T) {
	w := newWorld(t, edgefake.Options{})
	w.build(testPlan)
	w.mustApply("retail-admin", "retail", "retail-registry")
	w.loseAnswers(http.MethodPost, "/v1/app")
	_, _, err := w.apply("people-counter", 1, false)
	w.loseAnswers("", "")
	if err != nil && !providers.IsRetryable(err) {
		t.Fatalf("first attempt: %v", err)
	}
	out, _, err := w.apply("people-counter", 2, true)
	if err != nil {
		t.Fatal(err)
	}
	snap := w.srv.Snapshot()
	if len(snap.Apps) != 1 || out["app_id"].Value != strconv.Itoa(snap.Apps[0].ID) || out["namespace"].Value != snap.Apps[0].Namespace {
		t.Fatalf("apps %+v outputs %v", snap.Apps, out)
	}
	if n := len(w.callsTo(http.MethodPost, "/v1/app")); n != 1 {
		t.Fatalf("%d creates", n)
	}
	w.noDuplicates()
}

func TestApp_Apply_RefusesExistingAppWithOtherImage(t *testing.T) {
	w := newWorld(t, edgefake.Options{})
	w.build(testPlan)
	w.mustApply("retail-admin", "retail", "retail-registry", "people-counter")
	w.build(strings.Replace(testPlan, "retail/pc:1.4", "retail/pc:1.5", 1))
	_, _, err := w.apply("people-counter", 2, false)
	if err == nil || !strings.Contains(err.Error(), `image "registry.example.com/retail/pc:1.4" (plan: "registry.example.com/retail/pc:1.5")`) {
		t.Fatalf("err = %v", err)
	}
	if w.srv.Snapshot().Counters.AppsCreated != 1 {
		t.Fatal("a second application was created")
	}
}

func TestProbe_ReportsWhatExists(t *testing.T) {
	w := newWorld(t, edgefake.Options{})
	w.build(testPlan)
	order := []string{"retail-admin", "retail", "retail-operator", "label-eu", "gw-a", "retail-apps", "retail-registry", "people-counter"}
	for _, id := range order {
		exists, _, err := w.tasks[id].Action.(providers.Prober).Probe(t.Context(), w.exec(w.tasks[id], 1, false, nil, nil))
		if err != nil || exists {
			t.Fatalf("%s before: exists %v err %v", id, exists, err)
		}
	}
	w.mustApply(order...)
	for _, id := range order {
		exists, detail, err := w.tasks[id].Action.(providers.Prober).Probe(t.Context(), w.exec(w.tasks[id], 1, false, nil, nil))
		if err != nil || !exists || detail == "" {
			t.Fatalf("%s after: exists %v %q err %v", id, exists, detail, err)
		}
	}
}

func TestApp_Apply_CheckpointedIDGuardsAgainstRecreate(t *testing.T) {
	w := newWorld(t, edgefake.Options{})
	w.build(testPlan)
	w.mustApply("retail-admin", "retail", "retail-registry")
	out, _, err := w.apply("people-counter", 1, false)
	if err != nil {
		t.Fatal(err)
	}
	// The name lookup (an inferred call) misses the application: the id that an
	// earlier attempt checkpointed must keep the task from creating it again.
	blind := func(rw http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && r.URL.Path == "/v1/app" {
			rw.Header().Set("Content-Type", "application/json")
			_, _ = rw.Write([]byte(`{"total":0,"list":[]}`))
			return true
		}
		return false
	}
	w.intercept.Store(&blind)
	again, _, err := w.applyWith("people-counter", 2, true, out)
	if err != nil {
		t.Fatal(err)
	}
	if again["app_id"] != out["app_id"] || w.srv.Snapshot().Counters.AppsCreated != 1 {
		t.Fatalf("outputs %v then %v, counters %+v", out, again, w.srv.Snapshot().Counters)
	}
}

func TestUser_Apply_ManyUsersShareListings(t *testing.T) {
	w := newWorld(t, edgefake.Options{Envelope: true})
	var b strings.Builder
	b.WriteString(`version: 1
name: many
vars: {edge_url: "http://127.0.0.1:1"}
endpoints:
  edge: {kind: edge, url: "${var.edge_url}", auth: {username: admin, password: "${env.EDGE_ADMIN_PASSWORD}"}}
edge_users:
  defaults: {endpoint: edge, password: "${env.EDGE_OPERATOR_PASSWORD}", phone: "1", real_name: Store manager}
  items:
    - name: manager-${row.value}
      foreach: {range: {from: 1, to: 80}}
`)
	w.build(b.String())
	// 20 users already exist (a rerun after a lost state, in part).
	for i := 1; i <= 20; i++ {
		w.srv.SeedUser("manager-"+strconv.Itoa(i), operatorPW, false, edgefake.Approved)
	}
	res := w.run(t, t.TempDir()+"/s.db")
	if !res.OK() {
		t.Fatalf("%+v", res)
	}
	w.noDuplicates()
	snap := w.srv.Snapshot()
	if snap.Counters.UsersRegistered != 60 || snap.Counters.UserAudits != 60 {
		t.Fatalf("counters %+v", snap.Counters)
	}
	// One listing per task would be 80 listings of 1-2 pages each (and more after
	// each create); shared listings need far fewer.
	pages := len(w.callsTo(http.MethodGet, "/v1/admin/user"))
	if pages >= 80 {
		t.Fatalf("%d user list pages for 80 users", pages)
	}
	t.Logf("%d user list pages for 80 users", pages)
}
