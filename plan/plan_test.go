package plan

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite golden files")

// testEnv is the only environment the plan tests see: canary secrets.
var testEnv = map[string]string{
	"CLOUD_PASSWORD": "canary-cloud-pw-5521",
	"ADMIN_PASSWORD": "canary-admin-pw-7733",
	"X":              "canary-x-1199",
}

func opts() LoadOptions {
	return LoadOptions{
		Sections: []string{"http", "milestones"},
		Getenv: func(k string) (string, bool) {
			v, ok := testEnv[k]
			return v, ok
		},
	}
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
		t.Errorf("%s differs (run with -update after checking):\n--- got\n%s", path, got)
	}
}

func assertNoCanary(t *testing.T, text string) {
	t.Helper()
	for _, v := range testEnv {
		if strings.Contains(text, v) {
			t.Fatalf("secret value %s... appears in output", v[:8])
		}
	}
}

// dump renders an expanded plan for golden comparison.
func dump(p *Plan) string {
	var b strings.Builder
	fmt.Fprintf(&b, "plan %s version %d\n", p.Name, p.Version)
	for _, k := range sortedKeys(p.Vars) {
		fmt.Fprintf(&b, "var %s = %s\n", k, p.Vars[k])
	}
	for _, name := range p.EndpointOrder {
		ep := p.Endpoints[name]
		fmt.Fprintf(&b, "endpoint %s kind=%s url=%s auth=%s/%s/%s limits=%+v timeout=%s\n", name, ep.Kind, ep.URL, ep.Auth.Type, ep.Auth.Username, ep.Auth.Password, ep.Limits, ep.Timeout.D())
	}
	for _, it := range p.Items {
		fmt.Fprintf(&b, "\nitem %s (%s) origin=%q hash=%x\n", it.Name, it.Section, it.Origin, it.Hash[:6])
		if len(it.DependsOn) > 0 {
			fmt.Fprintf(&b, "  depends_on: %s\n", strings.Join(it.DependsOn, ", "))
		}
		for _, r := range it.Refs {
			fmt.Fprintf(&b, "  ref: %s.%s\n", r.Item, r.Key)
		}
		out, _ := yaml.Marshal(sortedNode(it.Fields))
		for _, l := range strings.Split(strings.TrimRight(p.Redactor.Redact(string(out)), "\n"), "\n") {
			fmt.Fprintf(&b, "  | %s\n", l)
		}
	}
	return b.String()
}

func sortedNode(n *yaml.Node) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		c := *n
		if len(n.Content) > 0 {
			c.Content = nil
			for _, ch := range n.Content {
				c.Content = append(c.Content, sortedNode(ch))
			}
		}
		return &c
	}
	type kv struct{ k, v *yaml.Node }
	var kvs []kv
	for i := 0; i+1 < len(n.Content); i += 2 {
		kvs = append(kvs, kv{n.Content[i], sortedNode(n.Content[i+1])})
	}
	sort.Slice(kvs, func(i, j int) bool { return kvs[i].k.Value < kvs[j].k.Value })
	c := *n
	c.Content = nil
	for _, e := range kvs {
		c.Content = append(c.Content, e.k, e.v)
	}
	return &c
}

func TestLoad_GoodPlans_Golden(t *testing.T) {
	files, _ := filepath.Glob("testdata/good/*.yaml")
	if len(files) == 0 {
		t.Fatal("no good plans")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			p, err := Load(f, opts())
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
		t.Run(filepath.Base(f), func(t *testing.T) {
			o := opts()
			if strings.Contains(f, "override_undeclared_var") {
				o.Vars = map[string]string{"nope": "1"}
			}
			p, err := Load(f, o)
			if err == nil {
				t.Fatalf("no error; plan has %d items", len(p.Items))
			}
			got := err.Error() + "\n"
			assertNoCanary(t, got)
			if !strings.Contains(got, "testdata/bad/") && !strings.Contains(f, "override_undeclared_var") {
				t.Errorf("error names no position: %s", got)
			}
			checkGolden(t, strings.TrimSuffix(f, ".yaml")+".err", got)
		})
	}
}

func TestLoad_ReportsEveryProblemAtOnce(t *testing.T) {
	_, err := Load("testdata/bad/many_problems_at_once.yaml", opts())
	if err == nil {
		t.Fatal("no error")
	}
	if n := len(flatten(err)); n < 5 {
		t.Errorf("%d problems reported, want every one of at least 5:\n%v", n, err)
	}
}

func TestLoad_RefusesHugePlanBeforeParsing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "huge.yaml")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Repeat("# padding padding padding padding padding padding\n", 1000)
	for f.Seek(0, 2); ; {
		st, _ := f.Stat()
		if st.Size() > 50<<20 {
			break
		}
		f.WriteString(line)
	}
	f.Close()
	_, err = Load(p, opts())
	if err == nil || !strings.Contains(err.Error(), "16 MiB") {
		t.Fatalf("err = %v, want the size limit", err)
	}
}

func TestLoad_HashIgnoresSecretValuesAndFormatting(t *testing.T) {
	dir := t.TempDir()
	a := "version: 1\nname: h\nhttp:\n  items:\n    - name: x\n      body: {a: 1, b: '${env.X}'}\n"
	b := "version: 1\nname: h\nhttp:\n  items:\n    - name: x\n      body:\n        b: '${env.X}'\n        a: 1\n"
	c := "version: 1\nname: h\nhttp:\n  items:\n    - name: x\n      body: {a: 2, b: '${env.X}'}\n"
	load := func(text string, env string) [32]byte {
		p := filepath.Join(dir, "p.yaml")
		os.WriteFile(p, []byte(text), 0o600)
		o := opts()
		o.Getenv = func(string) (string, bool) { return env, true }
		pl, err := Load(p, o)
		if err != nil {
			t.Fatal(err)
		}
		return pl.Items[0].Hash
	}
	if load(a, "secret-one") != load(b, "secret-two") {
		t.Error("key order or a secret value changed the hash")
	}
	if load(a, "secret-one") == load(c, "secret-one") {
		t.Error("a changed field did not change the hash")
	}
}

func TestLoad_WholeReferenceKeepsType(t *testing.T) {
	p := filepath.Join(t.TempDir(), "p.yaml")
	os.WriteFile(p, []byte("version: 1\nname: t\nhttp:\n  items:\n    - name: a-${row.value}\n      foreach: {range: {from: 8080, to: 8080}}\n      expect:\n        - ${row.value}\n"), 0o600)
	pl, err := Load(p, opts())
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Expect []int `yaml:"expect"`
	}
	if err := DecodeStrict(p, pl.Items[0].Fields, &s); err != nil || len(s.Expect) != 1 || s.Expect[0] != 8080 {
		t.Fatalf("decoded %+v err %v", s, err)
	}
}

type inner struct {
	Email string `yaml:"email"`
	Role  string `yaml:"role"`
}

type embedded struct {
	Endpoint string `yaml:"endpoint"`
}

type outer struct {
	embedded `yaml:",inline"`
	Name     string            `yaml:"name"`
	Port     int               `yaml:"port"`
	Users    []inner           `yaml:"users"`
	Admin    *inner            `yaml:"admin"`
	ByName   map[string]inner  `yaml:"by_name"`
	Password Secret            `yaml:"password"`
	Labels   map[string]string `yaml:"labels"`
}

func TestDecodeStrict(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      []string
	}{
		{"ok", "endpoint: e\nname: n\nport: 1\nusers: [{email: a, role: r}]\npassword: pw\n", nil},
		{"unknown top", "nmae: n\n", []string{`f.yaml:1:1: unknown field "nmae" (known: admin, by_name, endpoint, labels, name, password, port, users)`}},
		{"unknown in list", "users:\n  - email: a\n    rloe: r\n", []string{`f.yaml:3:5: users[0]: unknown field "rloe" (known: email, role)`}},
		{"unknown in pointer", "admin: {email: a, x: 1}\n", []string{`f.yaml:1:19: admin: unknown field "x"`}},
		{"unknown in map", "by_name:\n  a: {mail: x}\n", []string{`f.yaml:2:7: by_name.a: unknown field "mail"`}},
		{"wrong type", "port: eighty\n", []string{"f.yaml:1:7: port: got string \"eighty\", want an integer"}},
		{"two problems", "port: x\nbad: 1\n", []string{"unknown field \"bad\"", "want an integer"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte(tc.doc), &doc); err != nil {
				t.Fatal(err)
			}
			var o outer
			err := DecodeStrict("f.yaml", doc.Content[0], &o)
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if o.Endpoint != "e" || o.Password.Reveal() != "pw" || o.Users[0].Role != "r" {
					t.Errorf("decoded %+v", o)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestResolveRefs(t *testing.T) {
	type spec struct {
		Path    string
		Secret  Secret
		List    []string
		Map     map[string]string
		Body    any
		private string
	}
	s := &spec{
		Path:    "/s/${outputs.store.eu-1.id}/u",
		Secret:  NewSecret("${outputs.sys.key}"),
		List:    []string{"${outputs.sys.key}", "x"},
		Map:     map[string]string{"k": "${outputs.sys.key}"},
		Body:    map[string]any{"a": []any{"${outputs.sys.key}"}, "n": 1},
		private: "${outputs.sys.key}",
	}
	vals := map[string]string{"store.eu-1.id": "42", "sys.key": "K"}
	err := ResolveRefs(s, func(r Ref) (string, error) {
		v, ok := vals[r.Item+"."+r.Key]
		if !ok {
			return "", errors.New("missing " + r.Item)
		}
		return v, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.Path != "/s/42/u" || s.Secret.Reveal() != "K" || s.List[0] != "K" || s.Map["k"] != "K" || s.Body.(map[string]any)["a"].([]any)[0] != "K" {
		t.Errorf("resolved %+v", s)
	}
	if s.private != "${outputs.sys.key}" {
		t.Error("unexported field was changed")
	}
	if refs := FindRefs("a ${outputs.x.y} b $${outputs.z.w} ${outputs.bad}"); len(refs) != 1 || refs[0].Item != "x" {
		t.Errorf("FindRefs = %+v", refs)
	}
}

func TestRedactor(t *testing.T) {
	r := NewRedactor()
	r.Add("abc", "password123", "password1234")
	if got := r.Redact("x password1234 y password123 abc"); got != "x *** y *** abc" {
		t.Errorf("Redact = %q (short values are not secrets)", got)
	}
	if s := fmt.Sprintf("%v %+v %#v", NewSecret("hunter22"), NewSecret("hunter22"), NewSecret("hunter22")); strings.Contains(s, "hunter") {
		t.Errorf("Secret printed: %s", s)
	}
}

func FuzzParse(f *testing.F) {
	for _, dir := range []string{"testdata/good", "testdata/bad"} {
		files, _ := filepath.Glob(dir + "/*.yaml")
		for _, p := range files {
			b, _ := os.ReadFile(p)
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o := opts()
		o.MaxItems = 1000
		p, err := Parse("testdata/good/fuzz.yaml", data, o)
		if err == nil && p == nil {
			t.Fatal("nil plan without error")
		}
	})
}

func FuzzDecodeStrict(f *testing.F) {
	f.Add("name: a\nusers: [{email: x}]\n")
	f.Add("admin: {email: [1]}\nby_name: {a: 3}\n")
	f.Add("&a [*a]")
	f.Fuzz(func(t *testing.T, doc string) {
		var n yaml.Node
		if yaml.Unmarshal([]byte(doc), &n) != nil || len(n.Content) == 0 {
			return
		}
		var o outer
		_ = DecodeStrict("f.yaml", n.Content[0], &o)
	})
}
