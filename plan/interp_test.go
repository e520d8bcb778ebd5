package plan

import (
	"strings"
	"testing"
)

func TestParseRefs(t *testing.T) {
	show := func(segs []rawSeg) string {
		var b strings.Builder
		var walk func([]rawSeg)
		walk = func(segs []rawSeg) {
			for _, s := range segs {
				if !s.ref {
					b.WriteString("[" + s.lit + "]")
					continue
				}
				b.WriteString("{")
				walk(s.body)
				b.WriteString("}")
			}
		}
		walk(segs)
		return b.String()
	}
	for _, tc := range []struct{ in, want, err string }{
		{"plain", "[plain]", ""},
		{"a ${var.x} b", "[a ]{[var.x]}[ b]", ""},
		{"$${var.x}", "[${var.x}]", ""},
		{"$$${var.x}", "[$${var.x}]", ""},
		{"cost: $5 ${var.x}$", "[cost: $5 ]{[var.x]}[$]", ""},
		{"${outputs.s-${row.id}.id}", "{[outputs.s-]{[row.id]}[.id]}", ""},
		{"${var.x", "", `unterminated reference "${var.x" (a literal "${" is written "$${")`},
		{"a } b", "[a } b]", ""},
		{strings.Repeat("${a.", 12) + strings.Repeat("}", 12), "", "references nested too deeply"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			segs, err := parseRefs(tc.in)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err = %v, want %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := show(segs); got != tc.want {
				t.Errorf("parseRefs(%q) = %s, want %s", tc.in, got, tc.want)
			}
		})
	}
}

func TestRedactor(t *testing.T) {
	r := NewRedactor()
	r.Add("abc", "password123", "password1234")
	if got := r.Redact("x password1234 y password123 abc"); got != "x *** y *** abc" {
		t.Errorf("Redact = %q (short values are not secrets)", got)
	}
	s := NewSecret("hunter22")
	if out := strings.Join([]string{s.String(), s.GoString()}, " "); strings.Contains(out, "hunter") {
		t.Errorf("Secret printed: %s", out)
	}
}
