package plan

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// FuzzParse: no input makes Parse panic, and every problem it reports has a position.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"testdata/good", "testdata/bad"} {
		files, _ := filepath.Glob(dir + "/*.yaml")
		for _, p := range files {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o := opts()
		o.MaxItems = 1000
		p, err := Parse("testdata/good/fuzz.yaml", data, o)
		if err == nil {
			if p == nil {
				t.Fatal("nil plan without error")
			}
			return
		}
		for _, e := range flatten(err) {
			var pe *PosError
			if !errors.As(e, &pe) {
				t.Fatalf("problem without a position: %v", e)
			}
		}
		for _, c := range canaries {
			if strings.Contains(err.Error(), c) && !bytes.Contains(data, []byte(c)) {
				t.Fatalf("secret value %s... appears in an error:\n%v", c[:8], err)
			}
		}
	})
}

// FuzzDecodeStrict: no document makes DecodeStrict panic; its problems have positions.
func FuzzDecodeStrict(f *testing.F) {
	f.Add("name: a\nusers: [{email: x}]\n")
	f.Add("admin: {email: [1]}\nby_name: {a: 3}\n")
	f.Add("&a [*a]")
	f.Add("users:\n  - &u {email: a}\n  - <<: *u\n    role: r\n")
	f.Add("timeout: 30\npair: [1]\nsmall: 1000\nbody: {a: [b]}\n")
	f.Fuzz(func(t *testing.T, doc string) {
		var n yaml.Node
		if yaml.Unmarshal([]byte(doc), &n) != nil || len(n.Content) == 0 {
			return
		}
		var o outer
		for _, e := range flatten(DecodeStrict("f.yaml", n.Content[0], &o)) {
			var pe *PosError
			if !errors.As(e, &pe) {
				t.Fatalf("problem without a position: %v", e)
			}
		}
	})
}

// FuzzRefs: parsing and scanning references never panic, and FindRefs agrees with
// replaceRefs.
func FuzzRefs(f *testing.F) {
	for _, s := range []string{"${outputs.a.b}", "$${x} ${var.y}", "${outputs.s-${row.i}.id}", "${", "$$$", "}${}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = parseRefs(s)
		n := 0
		_, _, err := replaceRefs(s, func(Ref) (string, error) { n++; return "v", nil })
		if err != nil {
			t.Fatal(err)
		}
		if len(FindRefs(s)) != n {
			t.Fatalf("FindRefs found %d references, replaceRefs %d", len(FindRefs(s)), n)
		}
	})
}
