package plan

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite golden files")

// testEnv is the only environment the plan tests see: canary secrets.
var testEnv = map[string]string{
	"CLOUD_PASSWORD": "canary-cloud-pw-5521",
	"ADMIN_PASSWORD": "canary-admin-pw-7733",
	"X":              "canary-x-1199",
	"SHORT":          "abc",
}

// canaries are secret values that must never appear in an error or a dump.
var canaries = []string{"canary-cloud-pw-5521", "canary-admin-pw-7733", "canary-x-1199", "canary-file-secret-2718"}

func opts() LoadOptions {
	return LoadOptions{
		Sections:      []string{"http", "milestones"},
		EndpointKinds: testEndpointKinds,
		Getenv: func(k string) (string, bool) {
			v, ok := testEnv[k]
			return v, ok
		},
	}
}

// fileOpts are per-file option changes for the golden plans.
var fileOpts = map[string]func(*LoadOptions){
	"features.yaml":                func(o *LoadOptions) { o.Vars = map[string]string{"region": "us"} },
	"override_undeclared_var.yaml": func(o *LoadOptions) { o.Vars = map[string]string{"nope": "1"} },
}

func optsFor(file string) LoadOptions {
	o := opts()
	if f := fileOpts[filepath.Base(file)]; f != nil {
		f(&o)
	}
	return o
}

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./plan -update to create)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run with -update after checking):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func assertNoCanary(t *testing.T, text string) {
	t.Helper()
	for _, v := range canaries {
		if strings.Contains(text, v) {
			t.Fatalf("secret value %s... appears in output:\n%s", v[:8], text)
		}
	}
}

// dump renders an expanded plan for golden comparison.
func dump(p *Plan) string {
	var b strings.Builder
	fmt.Fprintf(&b, "plan %s version %d\n", p.Name, p.Version)
	for _, k := range sortedKeys(p.Vars) {
		fmt.Fprintf(&b, "var %s = %q\n", k, p.Vars[k])
	}
	for _, name := range p.EndpointOrder {
		ep := p.Endpoints[name]
		fmt.Fprintf(&b, "endpoint %s at %s kind=%s url=%s\n", name, ep.Pos, ep.Kind, ep.URL)
		a := ep.Auth
		fmt.Fprintf(&b, "  auth type=%q username=%q password=%q token=%q client_secret=%q\n", a.Type, a.Username, a.Password, a.Token, a.ClientSecret)
		fmt.Fprintf(&b, "  tls ca_file=%q ca_pem=%d bytes fingerprint=%q insecure=%v server_name=%q\n", ep.TLS.CAFile, len(ep.TLS.CAPEM), ep.TLS.Fingerprint, ep.TLS.Insecure, ep.TLS.ServerName)
		fmt.Fprintf(&b, "  limits %+v timeout=%s\n", ep.Limits, ep.Timeout.D())
	}
	for _, it := range p.Items {
		fmt.Fprintf(&b, "\nitem %s (%s) at %s origin=%q hash=%x\n", it.Name, it.Section, it.Pos, it.Origin, it.Hash[:6])
		if len(it.DependsOn) > 0 {
			fmt.Fprintf(&b, "  depends_on: %s\n", strings.Join(it.DependsOn, ", "))
		}
		for _, r := range it.Refs {
			fmt.Fprintf(&b, "  ref: %s.%s at %s\n", r.Item, r.Key, r.Pos)
		}
		out, err := yaml.Marshal(sortedNode(it.Fields()))
		if err != nil {
			out = []byte(err.Error())
		}
		for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
			fmt.Fprintf(&b, "  | %s\n", l)
		}
	}
	return p.Redactor.Redact(b.String())
}

// sortedNode copies n with mapping keys sorted and secret values masked.
func sortedNode(n *yaml.Node) *yaml.Node {
	c := *n
	if n.Tag == SecretTag {
		c.Value = "***"
	}
	if len(n.Content) == 0 {
		return &c
	}
	c.Content = nil
	if n.Kind != yaml.MappingNode {
		for _, ch := range n.Content {
			c.Content = append(c.Content, sortedNode(ch))
		}
		return &c
	}
	for _, i := range sortedPairs(n) {
		c.Content = append(c.Content, n.Content[i], sortedNode(n.Content[i+1]))
	}
	return &c
}

func TestLoad_GoodPlans_Golden(t *testing.T) {
	files, _ := filepath.Glob("testdata/good/*.yaml")
	if len(files) < 2 {
		t.Fatal("no good plans")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			p, err := Load(f, optsFor(f))
			if err != nil {
				t.Fatal(err)
			}
			got := dump(p)
			assertNoCanary(t, got)
			checkGolden(t, strings.TrimSuffix(f, ".yaml")+".golden", got)
		})
	}
}

func TestLoad_BadPlans_Golden(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.yaml")
	if len(files) < 40 {
		t.Fatalf("catalogue holds %d broken plans, want at least 40", len(files))
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			p, err := Load(f, optsFor(f))
			if err == nil {
				t.Fatalf("no error; plan has %d items", len(p.Items))
			}
			got := err.Error() + "\n"
			assertNoCanary(t, got)
			for _, e := range flatten(err) {
				var pe *PosError
				if !errors.As(e, &pe) || pe.Pos.File != f {
					t.Errorf("problem without a position in %s: %v", f, e)
				}
			}
			checkGolden(t, strings.TrimSuffix(f, ".yaml")+".err", got)
		})
	}
}

func TestLoad_ReportsEveryProblemAtOnceInOrder(t *testing.T) {
	_, err := Load("testdata/bad/many_problems_at_once.yaml", opts())
	if err == nil {
		t.Fatal("no error")
	}
	errs := flatten(err)
	if len(errs) < 5 {
		t.Errorf("%d problems reported, want every one of at least 5:\n%v", len(errs), err)
	}
	sorted := sort.SliceIsSorted(errs, func(i, j int) bool {
		var a, b *PosError
		errors.As(errs[i], &a)
		errors.As(errs[j], &b)
		return a.Pos.Line < b.Pos.Line || a.Pos.Line == b.Pos.Line && a.Pos.Col < b.Pos.Col
	})
	if !sorted {
		t.Errorf("problems not in position order:\n%v", err)
	}
}

func TestLoad_CapsProblemsPerPosition(t *testing.T) {
	_, err := Load("testdata/bad/name_errors_capped.yaml", opts())
	if err == nil {
		t.Fatal("no error")
	}
	if n := len(flatten(err)); n != maxErrorsPerPos+1 {
		t.Errorf("%d problems reported, want %d and a count of the others:\n%v", n, maxErrorsPerPos+1, err)
	}
	if !strings.Contains(err.Error(), "95 more problems at this position") {
		t.Errorf("no count of the problems not shown:\n%v", err)
	}
}

func TestLoad_RefusesHugePlanBeforeParsing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "huge.yaml")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	chunk := []byte(strings.Repeat("# padding padding padding padding padding padding\n", 20000))
	for written := 0; written <= 50<<20; written += len(chunk) {
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = Load(p, opts())
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "more than the 16 MiB a plan may have") {
		t.Fatalf("err = %v, want the size limit", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Errorf("refusing the plan allocated %d bytes: it was read", grew)
	}
	if _, err := Parse(p, make([]byte, MaxPlanBytes+1), opts()); err == nil || !strings.Contains(err.Error(), "16 MiB") {
		t.Errorf("Parse of a huge plan: err = %v", err)
	}
}

func TestLoad_ExpansionOverLimitFailsWithoutAllocating(t *testing.T) {
	for _, tc := range []struct{ name, foreach, want string }{
		{"range", "{range: {from: 1, to: 10000000}}", "expansion would produce 10000000 items, more than the limit of 500000"},
		{"product", "[{range: {from: 1, to: 2000}, as: a}, {range: {from: 1, to: 2000}, as: b}]", "expansion would produce 4000000 items"},
		{"int64 extremes", "{range: {from: -9223372036854775808, to: 9223372036854775807}}", "expansion would produce 18446744073709551616 items"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := "version: 1\nname: big\nmilestones:\n  items:\n    - name: n-${a.value}${b.value}${row.value}\n      foreach: " + tc.foreach + "\n"
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := Parse(filepath.Join(t.TempDir(), "p.yaml"), []byte(text), opts())
			runtime.ReadMemStats(&after)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
				t.Errorf("the refused expansion allocated %d bytes", grew)
			}
		})
	}
}

func TestLoad_MaxItemsOption(t *testing.T) {
	text := "version: 1\nname: m\nmilestones:\n  items:\n    - name: n-${row.value}\n      foreach: {range: {from: 1, to: 11}}\n"
	o := opts()
	o.MaxItems = 10
	if _, err := Parse("p.yaml", []byte(text), o); err == nil || !strings.Contains(err.Error(), "more than the limit of 10") {
		t.Fatalf("err = %v", err)
	}
	o.MaxItems = 11
	if p, err := Parse("p.yaml", []byte(text), o); err != nil || len(p.Items) != 11 {
		t.Fatalf("err = %v", err)
	}
}

func loadText(t *testing.T, text string, o LoadOptions) *Plan {
	t.Helper()
	p := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	pl, err := Load(p, o)
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

func TestLoad_Hash(t *testing.T) {
	base := "version: 1\nname: h\nhttp:\n  items:\n    - name: x\n      body: {a: 1, b: '${env.X}', c: [p, q]}\n"
	hash := func(text, secret string) [32]byte {
		o := opts()
		o.Getenv = func(string) (string, bool) { return secret, true }
		return loadText(t, text, o).Items[0].Hash
	}
	want := hash(base, "secret-one")
	for _, tc := range []struct {
		name, text, secret string
		same               bool
	}{
		{"other secret value", base, "secret-two", true},
		{"key order and layout", "version: 1\nname: h\nhttp:\n  items:\n    - name: x\n      body:\n        c:\n          - p\n          - \"q\"\n        b: \"${env.X}\"\n        a: 1\n", "secret-one", true},
		{"value from a var, quoted", "version: 1\nname: h\nvars: {one: 1}\nhttp:\n  items:\n    - name: x\n      body: {a: '${var.one}', b: '${env.X}', c: [p, q]}\n", "secret-one", true},
		{"value from a var, tagged string", "version: 1\nname: h\nvars: {one: 1}\nhttp:\n  items:\n    - name: x\n      body: {a: !!str '${var.one}', b: '${env.X}', c: [p, q]}\n", "secret-one", false},
		{"value from a var, typed", "version: 1\nname: h\nvars: {one: 1}\nhttp:\n  items:\n    - name: x\n      body:\n        a: ${var.one}\n        b: '${env.X}'\n        c: [p, q]\n", "secret-one", true},
		{"changed value", strings.Replace(base, "a: 1", "a: 2", 1), "secret-one", false},
		{"changed type", strings.Replace(base, "a: 1", "a: '1'", 1), "secret-one", false},
		{"other secret reference", strings.Replace(base, "env.X", "env.Y", 1), "secret-one", false},
		{"other name", strings.Replace(base, "name: x", "name: y", 1), "secret-one", false},
		{"other section", strings.Replace(base, "http:", "milestones:", 1), "secret-one", false},
		{"list order", strings.Replace(base, "[p, q]", "[q, p]", 1), "secret-one", false},
		{"value moved into a list", strings.Replace(base, "c: [p, q]", "c: [p, [q]]", 1), "secret-one", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := hash(tc.text, tc.secret); (got == want) != tc.same {
				t.Errorf("same hash = %v, want %v", got == want, tc.same)
			}
		})
	}
	t.Run("same spec from a foreach row", func(t *testing.T) {
		rowText := "version: 1\nname: h\nhttp:\n  items:\n    - name: ${row.value}\n      foreach: {list: [x]}\n      body: {a: 1, b: '${env.X}', c: ['${row.value}', q]}\n"
		direct := strings.Replace(base, "[p, q]", "[x, q]", 1)
		if hash(rowText, "secret-a") != hash(direct, "secret-b") {
			t.Error("a row value and the same literal hash differently")
		}
	})
}

func TestLoad_WholeReferenceKeepsType(t *testing.T) {
	text := `version: 1
name: t
vars: {port: "8080", on: "true"}
http:
  items:
    - name: a-${row.value}
      foreach: {range: {from: 7, to: 7}}
      port: ${var.port}
      row: ${row.value}
      flag: ${var.on}
      quoted: "${var.port}"
      mixed: ${var.port}/x
      tagged: !!str ${row.value}
      flow: {port: "${row.value}", id: !!str "${row.value}"}
      secret: ${env.X}
`
	pl := loadText(t, text, opts())
	var s struct {
		Port   int               `yaml:"port"`
		Row    int               `yaml:"row"`
		Flag   bool              `yaml:"flag"`
		Quoted string            `yaml:"quoted"`
		Mixed  string            `yaml:"mixed"`
		Tagged string            `yaml:"tagged"`
		Flow   map[string]string `yaml:"flow"`
		Secret Secret            `yaml:"secret"`
	}
	s.Flow = map[string]string{}
	if err := DecodeStrict(pl.File, pl.Items[0].Fields(), &s); err != nil {
		t.Fatal(err)
	}
	if s.Port != 8080 || s.Row != 7 || !s.Flag || s.Quoted != "8080" || s.Mixed != "8080/x" || s.Tagged != "7" || s.Flow["port"] != "7" || s.Secret.Reveal() != testEnv["X"] {
		t.Errorf("decoded %+v", s)
	}
	var typed struct {
		Port   any            `yaml:"port"`
		Row    any            `yaml:"row"`
		Flag   any            `yaml:"flag"`
		Tagged any            `yaml:"tagged"`
		Quoted int            `yaml:"quoted"`
		Flow   map[string]int `yaml:"flow"`
		Mixed  int            `yaml:"mixed"`
		Secret int            `yaml:"secret"`
	}
	var loose map[string]any
	if err := DecodeStrict(pl.File, pl.Items[0].Fields(), &loose); err != nil {
		t.Fatal(err)
	}
	flow := loose["flow"].(map[string]any)
	if loose["secret"] != testEnv["X"] || loose["port"] != 8080 || loose["quoted"] != 8080 || loose["mixed"] != "8080/x" || flow["port"] != 7 || flow["id"] != "7" {
		t.Errorf("decoded into any: %v", loose)
	}
	err := DecodeStrict(pl.File, pl.Items[0].Fields(), &typed)
	if err == nil {
		t.Fatal("a string and a secret decoded into ints")
	}
	assertNoCanary(t, err.Error())
	want := pl.File + ":12:14: mixed: got string \"8080/x\", want an integer\n" +
		pl.File + ":14:40: flow.id: got string \"7\", want an integer\n" +
		pl.File + ":15:15: secret: got a secret value (not shown), want an integer"
	if err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
	if typed.Quoted != 8080 || typed.Flow["port"] != 7 {
		t.Errorf("decoded %+v", typed)
	}
}

// TestLoad_ItemsShareNoChangedNodes: wherever two items of one entry differ, they have
// their own nodes all the way down from the root.
func TestLoad_ItemsShareNoChangedNodes(t *testing.T) {
	pl, err := Load("testdata/good/features.yaml", optsFor("features.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var differ func(a, b *yaml.Node) bool
	differ = func(a, b *yaml.Node) bool {
		d := a.Kind != b.Kind || a.Value != b.Value || a.Tag != b.Tag || len(a.Content) != len(b.Content)
		for i := 0; !d && i < len(a.Content); i++ {
			d = differ(a.Content[i], b.Content[i])
		}
		return d
	}
	var check func(path string, a, b *yaml.Node)
	check = func(path string, a, b *yaml.Node) {
		if !differ(a, b) {
			return
		}
		if a == b {
			t.Errorf("%s: a node that differs between items is shared", path)
			return
		}
		if &a.Content == &b.Content || len(a.Content) > 0 && &a.Content[0] == &b.Content[0] {
			t.Errorf("%s: Content shared", path)
		}
		for i := range a.Content {
			check(fmt.Sprintf("%s/%d", path, i), a.Content[i], b.Content[i])
		}
	}
	byEntry := map[Pos][]*Item{}
	for _, it := range pl.Items {
		byEntry[it.Pos] = append(byEntry[it.Pos], it)
	}
	checked := 0
	for _, items := range byEntry {
		for i := 1; i < len(items); i++ {
			check(items[0].Name+"~"+items[i].Name, items[0].Fields(), items[i].Fields())
			checked++
		}
	}
	if checked < 3 {
		t.Fatalf("only %d pairs checked", checked)
	}
}

func TestLoad_SecretsAreRedactedAndNeverInErrors(t *testing.T) {
	pl, err := Load("testdata/good/features.yaml", optsFor("features.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{testEnv["CLOUD_PASSWORD"], "canary-file-secret-2718"} {
		if got := pl.Redactor.Redact("x " + c + " y"); got != "x *** y" {
			t.Errorf("Redact = %q: secret not registered", got)
		}
	}
	if got := pl.Endpoints["edge"].Auth.ClientSecret.Reveal(); got != "canary-file-secret-2718" {
		t.Errorf("file secret = %q (trailing newline must be trimmed)", got)
	}
}

func TestLoad_GetenvDefaultsToProcessEnvironment(t *testing.T) {
	t.Setenv("PLAN_TEST_TOKEN", "process-env-token-42")
	o := opts()
	o.Getenv = nil
	pl := loadText(t, "version: 1\nname: e\nendpoints:\n  api: {kind: http, url: 'https://a.example', auth: {token: '${env.PLAN_TEST_TOKEN}'}}\n", o)
	if got := pl.Endpoints["api"].Auth.Token.Reveal(); got != "process-env-token-42" {
		t.Errorf("token = %q", got)
	}
}

func TestLoad_FileLimits(t *testing.T) {
	dir := t.TempDir()
	big := make([]byte, MaxSecretFileBytes+10)
	for i := range big {
		big[i] = 'k'
	}
	if err := os.WriteFile(filepath.Join(dir, "big.key"), big, 0o600); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "p.yaml")
	os.WriteFile(p, []byte("version: 1\nname: f\nhttp:\n  items:\n    - name: a\n      key: ${file.big.key}\n"), 0o600)
	_, err := Load(p, opts())
	if err == nil || !strings.Contains(err.Error(), "${file.big.key}: big.key is larger than 1 MiB") || strings.Contains(err.Error(), "kkkk") {
		t.Errorf("err = %v", err)
	}
	if testing.Short() {
		return
	}
	f, _ := os.Create(filepath.Join(dir, "big.csv"))
	f.WriteString("id\n")
	row := []byte(strings.Repeat("1234567\n", 1<<17))
	for n := 0; n <= MaxCSVBytes; n += len(row) {
		f.Write(row)
	}
	f.Close()
	os.WriteFile(p, []byte("version: 1\nname: f\nhttp:\n  items:\n    - name: a-${row.id}\n      foreach: {csv: big.csv}\n"), 0o600)
	_, err = Load(p, opts())
	if err == nil || !strings.Contains(err.Error(), "foreach.csv: big.csv is larger than 64 MiB") {
		t.Errorf("err = %v", err)
	}
}

func TestLoad_DefaultsKeepPositions(t *testing.T) {
	pl, err := Load("testdata/good/features.yaml", optsFor("features.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	it := pl.Items[0]
	retry := at(it.Fields(), "retry")
	for _, tc := range []struct {
		key        string
		line, col  int
		from, want string
	}{
		{"attempts", 41, 25, "the item", "5"},
		{"backoff", 32, 35, "the defaults", "1s"},
	} {
		n := valueOf(retry, tc.key)
		if n == retry || n.Value != tc.want || n.Line != tc.line || n.Column != tc.col {
			t.Errorf("retry.%s from %s = %q at %d:%d, want %q at %d:%d", tc.key, tc.from, n.Value, n.Line, n.Column, tc.want, tc.line, tc.col)
		}
	}
}

func TestLoad_OutputReferencesRoundTrip(t *testing.T) {
	pl, err := Load("testdata/good/features.yaml", optsFor("features.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var user *Item
	for _, it := range pl.Items {
		if it.Name == "user-b@example.com" {
			user = it
		}
	}
	var spec struct {
		Endpoint string            `yaml:"endpoint"`
		Headers  map[string]string `yaml:"headers"`
		Retry    map[string]any    `yaml:"retry"`
		Meta     map[string]string `yaml:"meta"`
		Body     map[string]any    `yaml:"body"`
	}
	if err := DecodeStrict(pl.File, user.Fields(), &spec); err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{"site-ams-1.id": "A1", "site-fra-1.id": "F1"}
	err = ResolveRefs(&spec, func(r Ref) (string, error) {
		v, ok := outputs[r.Item+"."+r.Key]
		if !ok {
			return "", fmt.Errorf("no output %s.%s", r.Item, r.Key)
		}
		return v, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"site_id": "A1",
		"url":     "https://x/F1?q=${literal}&row=1",
		"literal": "${not.a.ref} and ${not-a-ref}",
		"auth":    "Bearer " + testEnv["CLOUD_PASSWORD"],
	} {
		if got := spec.Body[k]; got != want {
			t.Errorf("body.%s = %q, want %q", k, got, want)
		}
	}
	if spec.Headers != nil {
		t.Errorf("headers: ~ did not replace the default: %v", spec.Headers)
	}
}

func TestLoad_VarOverrideIsLiteral(t *testing.T) {
	o := opts()
	o.Vars = map[string]string{"a": "${env.X}"}
	pl := loadText(t, "version: 1\nname: v\nvars: {a: x}\nmilestones:\n  items:\n    - name: m\n      note: ${var.a}\n", o)
	if got := valueOf(pl.Items[0].Fields(), "note").Value; got != "${env.X}" {
		t.Errorf("note = %q: a --var value must not be expanded", got)
	}
}

func TestLoad_CyclesAreLeftToTheRunner(t *testing.T) {
	pl := loadText(t, "version: 1\nname: c\nmilestones:\n  items:\n    - {name: a, depends_on: b}\n    - {name: b, depends_on: [a]}\n", opts())
	// The loader keeps both edges; runner.NewGraph reports the cycle as a path.
	deps := map[string]string{}
	for _, it := range pl.Items {
		deps[it.Name] = strings.Join(it.DependsOn, ",")
	}
	if deps["a"] != "b" || deps["b"] != "a" {
		t.Errorf("depends_on = %v, want a -> b and b -> a", deps)
	}
}

func TestLoad_ForeachUsesVars(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "sites.csv"), []byte("id\n1\n2\n"), 0o600)
	text := "version: 1\nname: f\nvars: {sites: sites.csv, count: 3}\nmilestones:\n  items:\n" +
		"    - name: s-${row.id}\n      foreach: {csv: '${var.sites}'}\n" +
		"    - name: r-${row.value}\n      foreach:\n        range:\n          from: 1\n          to: ${var.count}\n"
	p := filepath.Join(dir, "p.yaml")
	os.WriteFile(p, []byte(text), 0o600)
	pl, err := Load(p, opts())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, it := range pl.Items {
		names = append(names, it.Name)
	}
	if got := strings.Join(names, " "); got != "s-1 s-2 r-1 r-2 r-3" {
		t.Errorf("items = %s", got)
	}
}

func TestLoad_InsertedValuesAreData(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "rows.csv"), []byte("id,note\n1,${env.X}\n2,$${x}\n"), 0o600)
	text := "version: 1\nname: d\nvars: {v: \"$${var.v}\"}\nhttp:\n  items:\n" +
		"    - name: i-${row.id}\n      foreach: {csv: rows.csv}\n      note: ${row.note}\n      var: ${var.v}\n      ref: \"${row.note}/${outputs.m.id}\"\nmilestones:\n  items:\n    - name: m\n"
	p := filepath.Join(dir, "p.yaml")
	os.WriteFile(p, []byte(text), 0o600)
	pl, err := Load(p, opts())
	if err != nil {
		t.Fatal(err)
	}
	it := pl.Items[0]
	for key, want := range map[string]string{"note": "${env.X}", "var": "${var.v}", "ref": "$${env.X}/${outputs.m.id}"} {
		if got := valueOf(it.Fields(), key).Value; got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if len(it.Refs) != 1 || it.Refs[0].Item != "m" {
		t.Errorf("refs = %+v", it.Refs)
	}
	var spec struct {
		Note, Var, Ref string
	}
	if err := DecodeStrict(p, pl.Items[1].Fields(), &spec); err != nil {
		t.Fatal(err)
	}
	spec.Ref = valueOf(it.Fields(), "ref").Value
	if err := ResolveRefs(&spec, func(Ref) (string, error) { return "ID", nil }); err != nil {
		t.Fatal(err)
	}
	if spec.Note != "$${x}" || spec.Ref != "${env.X}/ID" {
		t.Errorf("spec = %+v", spec)
	}
}

func TestLoad_MissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), opts())
	var pe *PosError
	if !errors.As(err, &pe) || !errors.Is(err, os.ErrNotExist) || !strings.HasSuffix(err.Error(), "nope.yaml: no such file or directory") {
		t.Errorf("err = %v", err)
	}
}

// TestPlan_ConcurrentDecode: providers decode items in parallel; items share the
// nodes that are the same for every row.
func TestPlan_ConcurrentDecode(t *testing.T) {
	pl, err := Parse("bench.yaml", []byte(strings.Replace(bench100k, "to: 100000", "to: 2000", 1)), opts())
	if err != nil {
		t.Fatal(err)
	}
	type spec struct {
		Endpoint string            `yaml:"endpoint"`
		Method   string            `yaml:"method"`
		Path     string            `yaml:"path"`
		Query    map[string]string `yaml:"query"`
		Headers  map[string]string `yaml:"headers"`
		Body     map[string]any    `yaml:"body"`
		Expect   []int             `yaml:"expect"`
	}
	done := make(chan error)
	for w := 0; w < 4; w++ {
		go func(w int) {
			for i := w; i < len(pl.Items); i += 4 {
				var s spec
				if err := DecodeStrict(pl.File, pl.Items[i].Fields(), &s); err != nil {
					done <- err
					return
				}
				if want := fmt.Sprintf("/systems/%06d", i+1); s.Path != want || s.Body["port"] != 7001 {
					done <- fmt.Errorf("item %d: path %q port %v", i, s.Path, s.Body["port"])
					return
				}
			}
			done <- nil
		}(w)
	}
	for w := 0; w < 4; w++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func TestLoad_CheckSecrets_ReadsNoValue(t *testing.T) {
	dir := t.TempDir()
	// A value too short to be a secret: reading it is an error, so a load that
	// succeeds did not read it.
	os.WriteFile(filepath.Join(dir, "short.key"), []byte("ab\n"), 0o600)
	text := "version: 1\nname: e\nendpoints:\n" +
		"  api: {kind: http, url: 'https://a.example', auth: {token: '${env.NEVER_SET_TOKEN}'}}\n" +
		"  b: {kind: http, url: 'https://b.example', auth: {token: '${file.short.key}'}}\n"
	p := filepath.Join(dir, "p.yaml")
	os.WriteFile(p, []byte(text), 0o600)
	o := opts()
	o.Getenv = func(k string) (string, bool) { t.Errorf("Getenv(%q) called under CheckSecrets", k); return "", false }
	o.Secrets = CheckSecrets
	pl, err := Load(p, o)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := pl.Endpoints["api"].Auth.Token.Reveal(), PlaceholderSecret("env", "NEVER_SET_TOKEN"); got != want {
		t.Errorf("token = %q, want the placeholder %q", got, want)
	}
	a1, a2 := PlaceholderSecret("env", "A"), PlaceholderSecret("env", "A")
	if a1 == PlaceholderSecret("env", "B") || a1 != a2 {
		t.Error("placeholders must be distinct per reference and stable")
	}
	// Reading the same plan fails on both references.
	o.Secrets, o.Getenv = ReadSecrets, func(string) (string, bool) { return "", false }
	if _, err := Load(p, o); err == nil || !strings.Contains(err.Error(), "NEVER_SET_TOKEN is not set") || !strings.Contains(err.Error(), "fewer than") {
		t.Fatalf("read mode: %v", err)
	}
	// Checked in kind: a missing file, a directory, a malformed variable name.
	os.Mkdir(filepath.Join(dir, "adir"), 0o700)
	bad := "version: 1\nname: e\nendpoints:\n" +
		"  a: {kind: http, url: 'https://a.example', auth: {token: '${file.missing.key}'}}\n" +
		"  b: {kind: http, url: 'https://b.example', auth: {token: '${file.adir}'}}\n" +
		"  c: {kind: http, url: 'https://c.example', auth: {token: '${env.1BAD-NAME}'}}\n"
	os.WriteFile(p, []byte(bad), 0o600)
	o.Secrets = CheckSecrets
	_, err = Load(p, o)
	if err == nil {
		t.Fatal("bad references accepted")
	}
	for _, want := range []string{"p.yaml:4:", "missing.key", "p.yaml:5:", "adir is not a regular file", "p.yaml:6:", "not an environment variable name"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// TestItem_FieldsIsTheSameTreeOnEveryCall: an item keeps its row's values and builds
// its tree on each call; every call (also concurrent ones) gives the same tree, in
// nodes of its own wherever the tree depends on the row, so that a caller that
// changed one could not change the item.
func TestItem_FieldsIsTheSameTreeOnEveryCall(t *testing.T) {
	pl, err := Load("testdata/good/features.yaml", optsFor("features.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range pl.Items {
		want, err := yaml.Marshal(sortedNode(it.Fields()))
		if err != nil {
			t.Fatal(err)
		}
		trees := make([]*yaml.Node, 4)
		var wg sync.WaitGroup
		for i := range trees {
			wg.Add(1)
			go func() { defer wg.Done(); trees[i] = it.Fields() }()
		}
		wg.Wait()
		for _, tr := range trees {
			got, err := yaml.Marshal(sortedNode(tr))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("%s: another call gave\n%s\nwant\n%s", it.Name, got, want)
			}
		}
		if trees[0] == trees[1] && it.shape.root.dyn {
			t.Errorf("%s: two calls share a root that depends on the row", it.Name)
		}
	}
}
