package edge

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"provision/providers"
	"provision/providers/edge/edgefake"
	"provision/providers/fault"
	"provision/runner"
	"provision/state"
)

var posRE = regexp.MustCompile(`plan\.yaml:\d+:\d+: `)

func TestBuild_RejectsBadFields(t *testing.T) {
	for _, tc := range []struct{ name, from, to, want string }{
		{"weak password", "password: ${env.EDGE_RETAIL_ADMIN_PASSWORD}", "password: ${env.EDGE_WEAK_PASSWORD}", "retail-admin: password: must be 8-20 characters"},
		{"password too long", "password: ${env.EDGE_RETAIL_ADMIN_PASSWORD}", "password: ${env.EDGE_LONG_PASSWORD}", "password: must be 8-20 characters with at least one upper-case letter"},
		{"missing phone", `phone: "+31200000001"`, "", "retail-admin: phone: required"},
		{"missing real name", "real_name: Retail Operations\n", "\n", "retail-admin: real_name: required"},
		{"unknown parent", "parent: retail-admin", "parent: nobody", `retail-operator: parent: no edge_users item named "nobody"`},
		{"parent not an administrator", "      admin: true\n", "\n", `retail-operator: parent: user item "retail-admin" must be a general administrator`},
		{"business without introduce", "introduce: Store analytics, ", "", "retail: introduce: required"},
		{"business admin unknown", "admin: retail-admin, introduce", "admin: ghost, introduce", `retail: admin: no edge_users item named "ghost"`},
		{"business admin is a sub-user", "admin: retail-admin, introduce", "admin: retail-operator, introduce", `retail: admin: user item "retail-operator" must be a general administrator`},
		{"bad cluster label", "label: retail-eu", "label: retail_eu!", `label-eu: label: "retail_eu!" may only use letters, digits, '-' and '.'`},
		{"cluster label too long", "label: retail-eu", "label: " + strings.Repeat("x", 64), "label-eu: label: \"xxxx"},
		{"no clusters", "clusters: [cluster-a, cluster-b]", "clusters: []", "label-eu: clusters: required"},
		{"duplicate node", "nodes: [edge-a1, edge-a2]", "nodes: [edge-a1, edge-a1]", `gw-a: nodes[1]: "edge-a1" appears twice`},
		{"node label without cluster", "cluster: cluster-a, ", "", "gw-a: cluster: required"},
		{"repository user weak password", `password: "${env.EDGE_OPERATOR_PASSWORD}"`, `password: "${env.EDGE_WEAK_PASSWORD}"`, "ci-pusher: password: must be 8-20 characters"},
		{"bad project name", "name: retail-apps,", "name: Retail_Apps,", `Retail_Apps: project: "Retail_Apps": want lower-case letters and digits`},
		{"registry without address", "address: registry.example.com, ", "", "retail-registry: address: required"},
		{"registry without password", `, password: "${env.EDGE_REGISTRY_PASSWORD}"}`, "}", "retail-registry: password: required"},
		{"bad version", `version: "1.4"`, `version: "1.4.2"`, `people-counter: version: "1.4.2" must have the form x.y`},
		{"bad deploy type", "deploy_type: daemonset", "deploy_type: statefulset", `people-counter: deploy_type: "statefulset" must be deployment or daemonset`},
		{"port out of range", "ports: [8080]", "ports: [8080, 70000]", "people-counter: ports[1]: 70000 is not a port (1-65535)"},
		{"port zero", "ports: [8080]", "ports: [0]", "people-counter: ports[0]: 0 is not a port"},
		{"duplicate port", "ports: [8080]", "ports: [8080, 8080]", "people-counter: ports[1]: 8080 appears twice"},
		{"no ports", "ports: [8080]", "ports: []", "people-counter: ports: required"},
		{"image without tag", "image: registry.example.com/retail/pc:1.4", "image: registry.example.com:5000/retail/pc", `people-counter: image: "registry.example.com:5000/retail/pc" has no tag`},
		{"bad env name", "env: {LOG_LEVEL: info}", "env: {1LOG: info}", `people-counter: env: "1LOG" is not a variable name`},
		{"registry alias names no registry item", "repository_id: retail-registry\n", "registry: nowhere\n", `people-counter: registry: no edge_registries item named "nowhere"`},
		{"registry alias disagrees", "repository_id: retail-registry\n", "repository_id: retail-registry\n      registry: other\n", `people-counter: registry: no edge_registries item named "other"`},
		{"unknown business", "business: retail\n", "business: wholesale\n", `people-counter: business: no edge_businesses item named "wholesale"`},
		{"unknown field", "scale: small}", "scale: small, scope: big}", `unknown field "scope"`},
		{"wrong type", "ports: [8080]", "ports: [http]", "ports"},
		{"endpoint of another kind", "edge: {kind: edge,", "edge: {kind: http,", `endpoint "edge" is of kind "http", want edge`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := strings.Replace(testPlan, tc.from, tc.to, 1)
			if text == testPlan {
				t.Fatalf("replacement %q not found", tc.from)
			}
			w := newWorld(t, edgefake.Options{})
			err := w.tryBuild(text)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant %q", err, tc.want)
			}
			if !posRE.MatchString(err.Error()) {
				t.Errorf("no position in %q", err)
			}
			w.noSecrets(err)
		})
	}
}

func TestBuild_ReportsEveryProblemAtOnce(t *testing.T) {
	text := strings.NewReplacer(`version: "1.4"`, `version: "one"`, "deploy_type: daemonset", "deploy_type: job", "ports: [8080]", "ports: [99999]").Replace(testPlan)
	w := newWorld(t, edgefake.Options{})
	err := w.tryBuild(text)
	for _, want := range []string{"version:", "deploy_type:", "ports[0]:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
}

func TestBuild_RegistryAliasOfTheFirstVersion(t *testing.T) {
	w := newWorld(t, edgefake.Options{})
	w.build(strings.Replace(testPlan, "repository_id: retail-registry\n", "registry: retail-registry\n", 1))
	app := w.tasks["people-counter"]
	if sp := app.Spec.(*AppSpec); sp.RegistryID != "retail-registry" || strings.Join(app.Deps, ",") != "retail,retail-registry" {
		t.Fatalf("spec %+v deps %v", sp, app.Deps)
	}
}

func TestBuild_EndpointAuthIsChecked(t *testing.T) {
	w := newWorld(t, edgefake.Options{})
	text := strings.Replace(testPlan, `auth: {username: admin, password: "${env.EDGE_ADMIN_PASSWORD}"}`, `auth: {username: admin}`, 1)
	err := w.tryBuild(text)
	if err == nil || !strings.Contains(err.Error(), "endpoint edge: auth: username and password of the system administrator are required") {
		t.Fatalf("err = %v", err)
	}
}

func TestBuild_HashIgnoresSecretsAndTracksSpec(t *testing.T) {
	w := newWorld(t, edgefake.Options{})
	w.build(testPlan)
	before := w.tasks["people-counter"].Hash
	user := w.tasks["retail-admin"].Hash
	secrets["EDGE_RETAIL_ADMIN_PASSWORD"] = "Changed123pw"
	defer func() { secrets["EDGE_RETAIL_ADMIN_PASSWORD"] = retailPW }()
	w.build(testPlan)
	if w.tasks["retail-admin"].Hash != user {
		t.Error("a password change changed the user's hash")
	}
	w.build(strings.Replace(testPlan, "ports: [8080]", "ports: [8081]", 1))
	if w.tasks["people-counter"].Hash == before {
		t.Error("a port change did not change the application's hash")
	}
}

func TestKinds_DocsNameEveryField(t *testing.T) {
	specs := map[string]any{UsersSection: UserSpec{}, BusinessesSection: BusinessSpec{}, ClusterLabelsSection: ClusterLabelSpec{},
		NodeLabelsSection: NodeLabelSpec{}, RepoUsersSection: RepoUserSpec{}, RepoProjectsSection: ProjectSpec{}, RegistriesSection: RegistrySpec{}, AppsSection: AppSpec{}}
	pkgDoc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range Kinds() {
		sp, ok := specs[k.Section()]
		if !ok {
			t.Fatalf("no spec for %s", k.Section())
		}
		if !strings.HasPrefix(k.Doc(), k.Section()+":") || !strings.Contains(string(pkgDoc), "// "+k.Section()+":") {
			t.Errorf("%s: doc does not start with the section name or the package doc misses it", k.Section())
		}
		rt := reflect.TypeOf(sp)
		for i := 0; i < rt.NumField(); i++ {
			tag, _, _ := strings.Cut(rt.Field(i).Tag.Get("yaml"), ",")
			if tag == "" || tag == "-" {
				continue
			}
			if !regexp.MustCompile(`(?m)(^|[ ,])` + tag + `\b`).MatchString(k.Doc()) {
				t.Errorf("%s: Doc() does not name field %s", k.Section(), tag)
			}
		}
	}
}

// TestExamplePlan_RunsUnderFaultsWithoutDuplicates runs examples/plans/edge.yaml
// with the real runner against the fake with faults on, then again from a lost
// state file: everything is adopted, nothing is created twice.
func TestExamplePlan_RunsUnderFaultsWithoutDuplicates(t *testing.T) {
	raw, err := os.ReadFile("../../examples/plans/edge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The example's rate limit (10/s) only slows the test down.
	example := strings.Replace(string(raw), "rate_per_second: 10", "rate_per_second: 1000", 1)
	if example == string(raw) {
		t.Fatal("the example plan has no rate limit to lift")
	}
	for _, st := range answerStyles {
		t.Run(st.name, func(t *testing.T) {
			o := st.opts
			o.Clusters = edgefake.DemoClusters()
			o.Faults = fault.Config{ErrorRate: 0.1, LostRate: 0.15, DropRate: 0.05, Seed: 11}
			w := newWorld(t, o)
			w.build(example)
			res := w.run(t, filepath.Join(w.dir, "state.db"))
			if !res.OK() {
				t.Fatalf("first run: %+v", res)
			}
			w.noDuplicates()
			snap := w.srv.Snapshot()
			if len(snap.Users) != 2 || len(snap.Businesses) != 1 || snap.Businesses[0].Status != edgefake.Approved || len(snap.Apps) != 2 ||
				len(snap.Registries) != 1 || len(snap.Projects) != 1 {
				t.Fatalf("snapshot %+v", snap)
			}
			ns := "ns" + strconv.Itoa(snap.Businesses[0].ID)
			for _, a := range snap.Apps {
				if a.Namespace != ns || a.RepositoryID != "retail-registry" {
					t.Errorf("app %+v", a)
				}
			}
			a, _ := snap.Cluster("cluster-a")
			b, _ := snap.Cluster("cluster-b")
			if strings.Join(a.Labels, ",") != "retail-eu" || strings.Join(b.Labels, ",") != "retail-eu" || snap.Counters.NodeLabelsAdded != 3 {
				t.Errorf("clusters %+v %+v counters %+v", a, b, snap.Counters)
			}
			// A lost state file: every task runs again and adopts.
			w.srv.Faults.Set(fault.Config{})
			before := w.srv.Snapshot().Counters
			w.build(example)
			res = w.run(t, filepath.Join(w.dir, "fresh.db"))
			after := w.srv.Snapshot().Counters
			before.Logins, after.Logins, before.Refreshes, after.Refreshes = 0, 0, 0, 0
			if !res.OK() || after != before {
				t.Fatalf("rerun: %+v\nbefore %+v\nafter  %+v", res, before, after)
			}
			w.noDuplicates()
		})
	}
}

func (w *world) run(t *testing.T, statePath string) *runner.Result {
	t.Helper()
	var tasks []*providers.Task
	for _, it := range w.plan.Items {
		tasks = append(tasks, w.tasks[it.Name])
	}
	g, err := runner.NewGraph(tasks)
	if err != nil {
		t.Fatal(err)
	}
	st, err := state.Open(statePath, state.Options{PlanName: w.plan.Name})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := runner.Run(ctx, g, st, runner.Options{Parallel: 4, MaxAttempts: 12, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond,
		Log: zerolog.Nop(), Redactor: w.plan.Redactor})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Failures {
		for _, s := range secrets {
			if strings.Contains(f.Error, s) {
				t.Fatalf("secret in a failure: %s", f.Error)
			}
		}
	}
	return res
}
