package plan

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

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
	Small    int8              `yaml:"small"`
	Users    []inner           `yaml:"users"`
	Admin    *inner            `yaml:"admin"`
	ByName   map[string]inner  `yaml:"by_name"`
	Password Secret            `yaml:"password"`
	Labels   map[string]string `yaml:"labels"`
	Timeout  Duration          `yaml:"timeout"`
	Body     any               `yaml:"body"`
	Raw      yaml.Node         `yaml:"raw"`
	Pair     [2]int            `yaml:"pair"`
	Skipped  string            `yaml:"-"`
	Default  bool
}

type withExtra struct {
	Name  string         `yaml:"name"`
	Extra map[string]int `yaml:",inline"`
}

func node(t testing.TB, doc string) *yaml.Node {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &n); err != nil {
		t.Fatal(err)
	}
	return n.Content[0]
}

func TestDecodeStrict(t *testing.T) {
	const known = "(known: admin, body, by_name, default, endpoint, labels, name, pair, password, port, raw, small, timeout, users)"
	for _, tc := range []struct {
		name, doc string
		want      []string // exact problems, in order
	}{
		{"ok", "endpoint: e\nname: n\nport: 1\nusers: [{email: a, role: r}]\npassword: pw\ntimeout: 2m\nbody: {any: [thing]}\nraw: {x: 1}\npair: [1, 2]\ndefault: true\nlabels: ~\n", nil},
		{"unknown top", "nmae: n\n", []string{`f.yaml:1:1: unknown field "nmae" ` + known}},
		{"dash tag is not a key", "skipped: x\n", []string{`f.yaml:1:1: unknown field "skipped" ` + known}},
		{"unknown in list", "users:\n  - email: a\n  - email: b\n    rloe: r\n", []string{`f.yaml:4:5: users[1]: unknown field "rloe" (known: email, role)`}},
		{"unknown in pointer", "admin: {email: a, x: 1}\n", []string{`f.yaml:1:19: admin: unknown field "x" (known: email, role)`}},
		{"unknown in map of structs", "by_name:\n  a: {mail: x}\n", []string{`f.yaml:2:7: by_name.a: unknown field "mail" (known: email, role)`}},
		{"free-form body is not checked", "body: {whatever: {deep: [1]}}\n", nil},
		{"duplicate", "name: a\nport: 1\nname: b\n", []string{`f.yaml:3:1: duplicate field "name" (first at line 1)`}},
		{"wrong type", "port: eighty\n", []string{`f.yaml:1:7: port: got string "eighty", want an integer`}},
		{"out of range", "small: 300\n", []string{"f.yaml:1:8: small: 300 is out of range (want an integer that fits in int8)"}},
		{"mapping for a string", "name: {a: 1}\n", []string{"f.yaml:1:7: name: got a mapping, want a string"}},
		{"scalar for a list", "users: bob\n", []string{`f.yaml:1:8: users: got string "bob", want a list`}},
		{"scalar for a struct", "admin: bob\n", []string{`f.yaml:1:8: admin: got string "bob", want a mapping`}},
		{"wrong type deep", "users:\n  - email: [a]\n", []string{"f.yaml:2:12: users[0].email: got a list, want a string"}},
		{"array length", "pair: [1, 2, 3]\n", []string{"f.yaml:1:7: pair: got 3 values, want 2"}},
		{"bad duration", "timeout: 30\n", []string{"f.yaml:1:10: timeout: 30 has no unit: want a duration such as 30s or 2m"}},
		{"negative duration", "timeout: -1s\n", []string{`f.yaml:1:10: timeout: "-1s" is negative`}},
		{"all problems at once", "port: x\nbad: 1\nusers: [{role: [r]}]\ntimeout: soon\n", []string{
			`f.yaml:2:1: unknown field "bad" ` + known,
			`f.yaml:1:7: port: got string "x", want an integer`,
			"f.yaml:3:16: users[0].role: got a list, want a string",
			`f.yaml:4:10: timeout: "soon" is not a duration: want e.g. 30s or 2m`,
		}},
		{"merge keys are checked", "base: &b {email: a, nope: 1}\n", []string{`f.yaml:1:1: unknown field "base" ` + known}},
		{"null is fine anywhere", "admin: ~\nusers: ~\nport: ~\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o outer
			err := DecodeStrict("f.yaml", node(t, tc.doc), &o)
			var got []string
			for _, e := range flatten(err) {
				var pe *PosError
				if !errors.As(e, &pe) {
					t.Errorf("not a *PosError: %v", e)
				}
				got = append(got, e.Error())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if tc.name == "ok" && (o.Endpoint != "e" || o.Password.Reveal() != "pw" || o.Users[0].Role != "r" || o.Timeout.D() != 2*time.Minute || o.Raw.Kind != yaml.MappingNode || !o.Default) {
				t.Errorf("decoded %+v", o)
			}
		})
	}
}

func TestDecodeStrict_MergeKeysAndInlineMaps(t *testing.T) {
	n := node(t, "users:\n  - &u {email: a, role: r}\n  - <<: *u\n    role: s\n  - <<: *u\n    rol: s\n")
	var o outer
	err := DecodeStrict("f.yaml", n, &o)
	if err == nil || err.Error() != `f.yaml:6:5: users[2]: unknown field "rol" (known: email, role)` {
		t.Fatalf("err = %v", err)
	}
	if len(o.Users) != 3 || o.Users[1].Email != "a" || o.Users[1].Role != "s" {
		t.Errorf("users = %+v", o.Users)
	}
	var w withExtra
	if err := DecodeStrict("f.yaml", node(t, "name: n\nx: 1\ny: 2\n"), &w); err != nil || w.Extra["y"] != 2 {
		t.Fatalf("inline map: %+v, %v", w, err)
	}
	if err := DecodeStrict("f.yaml", node(t, "name: n\nx: one\n"), &w); err == nil || err.Error() != `f.yaml:2:4: x: got string "one", want an integer` {
		t.Fatalf("inline map type error: %v", err)
	}
}

func TestDecodeStrict_NeverQuotesSecrets(t *testing.T) {
	n := node(t, "port: x\ntimeout: x\nname: [x]\n")
	for _, i := range []int{1, 3} {
		n.Content[i].Value, n.Content[i].Tag = "canary-x-1199", SecretTag
	}
	n.Content[5].Content[0].Value, n.Content[5].Content[0].Tag = "canary-x-1199", SecretTag
	var o outer
	err := DecodeStrict("f.yaml", n, &o)
	if err == nil {
		t.Fatal("no error")
	}
	assertNoCanary(t, err.Error())
	want := "f.yaml:1:7: port: got a secret value (not shown), want an integer\n" +
		"f.yaml:2:10: timeout: invalid value (from a secret, not shown)\n" +
		"f.yaml:3:7: name: got a list, want a string"
	if err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
}

func TestDecodeStrict_Arguments(t *testing.T) {
	var o outer
	if err := DecodeStrict("f.yaml", nil, &o); err != nil {
		t.Errorf("nil node: %v", err)
	}
	if err := DecodeStrict("f.yaml", node(t, "name: x\n"), o); err == nil {
		t.Error("a non-pointer was accepted")
	}
	var doc yaml.Node
	yaml.Unmarshal([]byte("name: x\n"), &doc)
	if err := DecodeStrict("f.yaml", &doc, &o); err != nil || o.Name != "x" {
		t.Errorf("document node: %v %q", err, o.Name)
	}
	cyc := node(t, "&a [*a]")
	var l []any
	if err := DecodeStrict("f.yaml", cyc, &l); err == nil {
		t.Error("a self-referencing alias decoded")
	}
}

// flatSpec is a flat struct: the shape decodeFlat takes without yaml's decoder.
type flatSpec struct {
	Note  string `yaml:"note"`
	Title string `yaml:"title,omitempty"`
	Plain string
	ID    string `yaml:"account_id"`
}

// TestDecodeFlat_SameAsYAML decodes mappings both ways: whenever decodeFlat takes a
// document it must give what yaml.v3 gives (the fields keep their previous values
// where yaml leaves them), and it must leave the rest to yaml.
func TestDecodeFlat_SameAsYAML(t *testing.T) {
	type flatDoc struct {
		src  string
		fast bool
	}
	docs := []flatDoc{
		{`note: hello`, true},
		{"note: \"x y\"\ntitle: 'z'\nplain: |\n  block\n", true},
		{"note: >\n  folded\n  text\ntitle: !!str 5", true},
		{`note: ""`, true},
		{`account_id: "052"`, true},
		{`account_id: !!str 052`, true},
		{`account_id: 052`, false},
		{"note: a\n\"note\": b", false},
		{`note: 5`, false},
		{`note: null`, false},
		{`note: ~`, false},
		{`note: true`, false},
		{`note: !!binary aGk=`, false},
		{`note: !!int x`, false},
		{`note: !secret x`, false},
		{`note: [a]`, false},
		{`note: {a: b}`, false},
		{"a: &x hi\nnote: *x", false},
		{`"note": quoted key`, true},
		{`5: x`, false},
		{`unknown: x`, false},
		{"note: a\nnote: b", false},
		{`!!map {note: a}`, true},
		{`!other {note: a}`, false},
		{"<<: {note: a}", false},
	}
	// Untagged scalars, as an item's field tree holds for a value that is one whole
	// reference (note: ${row.x}): yaml resolves plain ones, so they are declined.
	untagged := func(v string, st yaml.Style) *yaml.Node {
		return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{
			{Kind: yaml.ScalarNode, Tag: "!!str", Value: "note"},
			{Kind: yaml.ScalarNode, Value: v, Style: st},
		}}
	}
	built := map[string]*yaml.Node{
		"untagged plain 5":     untagged("5", 0),
		"untagged plain text":  untagged("text", 0),
		"untagged plain null":  untagged("null", 0),
		"untagged quoted 5":    untagged("5", yaml.DoubleQuotedStyle),
		"untagged quoted null": untagged("null", yaml.SingleQuotedStyle),
	}
	docs = append(docs, flatDoc{"untagged plain 5", false}, flatDoc{"untagged plain text", false},
		flatDoc{"untagged plain null", false}, flatDoc{"untagged quoted 5", true}, flatDoc{"untagged quoted null", true})
	for _, d := range docs {
		n := built[d.src]
		if n == nil {
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte(d.src), &doc); err != nil {
				t.Fatalf("%q: %v", d.src, err)
			}
			n = doc.Content[0]
		}
		fast := flatSpec{Note: "before", Title: "before", Plain: "before", ID: "before"}
		took := decodeFlat(n, reflect.ValueOf(&fast).Elem())
		if took != d.fast {
			t.Errorf("%q: decodeFlat took it = %v, want %v", d.src, took, d.fast)
		}
		if !took {
			if fast != (flatSpec{Note: "before", Title: "before", Plain: "before", ID: "before"}) {
				t.Errorf("%q: decodeFlat declined but set %+v", d.src, fast)
			}
			continue
		}
		w := &strictWalker{budget: walkBudget}
		w.check(n, reflect.TypeFor[flatSpec](), nil, 0)
		if len(w.errs) > 0 {
			t.Errorf("%q: decodeFlat took a document the check refuses: %v", d.src, w.errs)
		}
		slow := flatSpec{Note: "before", Title: "before", Plain: "before", ID: "before"}
		if err := n.Decode(&slow); err != nil {
			t.Fatalf("%q: yaml: %v", d.src, err)
		}
		if fast != slow {
			t.Errorf("%q: decodeFlat gave %+v, yaml %+v", d.src, fast, slow)
		}
	}
}

// TestDecodeFlat_OnlyFlatTypes: structs with other kinds of fields, methods, inline
// or embedded fields go to yaml's decoder.
func TestDecodeFlat_OnlyFlatTypes(t *testing.T) {
	type embedded struct{ Note string }
	type withInt struct {
		Note string
		N    int
	}
	type withSecret struct{ Note Secret }
	type withEmbedded struct{ embedded }
	type withInline struct {
		E embedded `yaml:",inline"`
	}
	type withUnexported struct {
		Note string
		x    string // never set: yaml skips it, so the fast path declines the type
	}
	type withDup struct {
		A string `yaml:"note"`
		B string `yaml:"note"`
	}
	for _, v := range []any{withInt{}, withSecret{}, withEmbedded{}, withInline{}, withUnexported{x: ""}, withDup{}, Duration{}} {
		if flatOf(reflect.TypeOf(v)) != nil {
			t.Errorf("%T taken as flat", v)
		}
	}
	if flatOf(reflect.TypeOf(flatSpec{})) == nil {
		t.Error("flatSpec not taken as flat")
	}
}

// TestLeaf_PredeclaredTypes: the shortcut for predeclared types gives what the
// method-set test gives.
func TestLeaf_PredeclaredTypes(t *testing.T) {
	for _, v := range []any{"", 0, int64(0), uint8(0), 1.5, true, Secret{}, Duration{}, yaml.Node{}, flatSpec{}} {
		rt := reflect.TypeOf(v)
		want := rt == nodeType || rt.Implements(unmarshalerType) || reflect.PointerTo(rt).Implements(unmarshalerType)
		if got := leaf(rt); got != want {
			t.Errorf("leaf(%v) = %v, want %v", rt, got, want)
		}
	}
	if !leaf(reflect.TypeFor[error]()) || !leaf(reflect.TypeFor[any]()) {
		t.Error("interfaces must be leaves")
	}
}
