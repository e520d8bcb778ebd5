package plan

import (
	"errors"
	"reflect"
	"testing"
)

func TestFindRefs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []Ref
	}{
		{"plain", nil},
		{"${outputs.a.b}", []Ref{{Item: "a", Key: "b"}}},
		{"x ${outputs.store.eu-1.id} y ${outputs.sys.key}", []Ref{{Item: "store.eu-1", Key: "id"}, {Item: "sys", Key: "key"}}},
		{"$${outputs.a.b}", nil},
		{"$$${outputs.a.b}", nil},
		{"$$$${outputs.a.b}", nil}, // "$$" then an escaped "${"
		{"${outputs.bad} ${outputs..k} ${outputs.i.} ${var.x} ${outputs.a.b", nil},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := FindRefs(tc.in); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("FindRefs(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

type refSpec struct {
	Path    string
	Secret  Secret
	List    []string
	Map     map[string]string
	Secrets map[string]Secret
	Body    any
	Inner   *refSpec
	Self    *refSpec
	Arr     [1]string
	Literal string
	Plain   string
	private string
}

func TestResolveRefs(t *testing.T) {
	s := &refSpec{
		Path:    "/s/${outputs.store.eu-1.id}/u",
		Secret:  NewSecret("Bearer ${outputs.sys.key}"),
		List:    []string{"${outputs.sys.key}", "x"},
		Map:     map[string]string{"k": "${outputs.sys.key}", "n": "none"},
		Secrets: map[string]Secret{"k": NewSecret("${outputs.sys.key}")},
		Body:    map[string]any{"a": []any{"${outputs.sys.key}", 1}, "b": "${outputs.sys.key}"},
		Inner:   &refSpec{Path: "${outputs.sys.key}"},
		Arr:     [1]string{"${outputs.sys.key}"},
		Literal: "${outputs.sys.key} $${outputs.sys.key}",
		Plain:   "$${kept}",
		private: "${outputs.sys.key}",
	}
	s.Self = s
	vals := map[string]string{"store.eu-1.id": "42", "sys.key": "K"}
	var asked []Ref
	err := ResolveRefs(s, func(r Ref) (string, error) {
		asked = append(asked, r)
		v, ok := vals[r.Item+"."+r.Key]
		if !ok {
			return "", errors.New("missing " + r.Item)
		}
		return v, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	body := s.Body.(map[string]any)
	for name, c := range map[string]struct{ got, want string }{
		"path":    {s.Path, "/s/42/u"},
		"secret":  {s.Secret.Reveal(), "Bearer K"},
		"list":    {s.List[0], "K"},
		"map":     {s.Map["k"], "K"},
		"secrets": {s.Secrets["k"].Reveal(), "K"},
		"body.a":  {body["a"].([]any)[0].(string), "K"},
		"body.b":  {body["b"].(string), "K"},
		"inner":   {s.Inner.Path, "K"},
		"array":   {s.Arr[0], "K"},
		"escaped": {s.Literal, "K ${outputs.sys.key}"},
		"no refs": {s.Plain, "$${kept}"},
		"private": {s.private, "${outputs.sys.key}"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", name, c.got, c.want)
		}
	}
	if len(asked) != 10 {
		t.Errorf("lookup called %d times, want 10 (the self pointer visited once)", len(asked))
	}
	err = ResolveRefs(&refSpec{Path: "${outputs.gone.id}"}, func(r Ref) (string, error) { return "", errors.New("not done yet") })
	if err == nil || err.Error() != "${outputs.gone.id}: not done yet" {
		t.Errorf("err = %v", err)
	}
	if err := ResolveRefs(refSpec{}, nil); err == nil {
		t.Error("a non-pointer was accepted")
	}
}
