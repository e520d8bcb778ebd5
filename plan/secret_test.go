package plan

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// encodedForms lists every form a secret travels in on the wire, as a hostile
// server would echo it back: raw, base64 (both alphabets, with and without
// padding, alone and inside a longer encoded text), query- and path-escaped,
// JSON-escaped (with and without HTML escaping, and twice).
func encodedForms(v string) map[string]string {
	jsonEsc := func(s string, html bool) string {
		var b strings.Builder
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(html)
		_ = enc.Encode(s)
		out := strings.TrimSpace(b.String())
		return out[1 : len(out)-1]
	}
	forms := map[string]string{
		"raw":                 v,
		"base64 std":          base64.StdEncoding.EncodeToString([]byte(v)),
		"base64 std raw":      base64.RawStdEncoding.EncodeToString([]byte(v)),
		"base64 url":          base64.URLEncoding.EncodeToString([]byte(v)),
		"base64 url raw":      base64.RawURLEncoding.EncodeToString([]byte(v)),
		"query escaped":       url.QueryEscape(v),
		"path escaped":        url.PathEscape(v),
		"json escaped":        jsonEsc(v, true),
		"json escaped (html)": jsonEsc(v, false),
		"json escaped twice":  jsonEsc(jsonEsc(v, true), true),
	}
	for i, prefix := range []string{"x", "xy", "xyz"} {
		whole := base64.StdEncoding.EncodeToString([]byte(prefix + v + "!tail"))
		forms["base64 inside a longer text "+string(rune('0'+i))] = whole
		forms["base64 url inside a longer text "+string(rune('0'+i))] = base64.URLEncoding.EncodeToString([]byte(prefix + v + "?tail>>"))
	}
	return forms
}

func TestRedactor_EveryEncodedFormIsMasked(t *testing.T) {
	secrets := []string{
		"Canary+Secret/With=Specials&<q>\"z\"",
		"plainCanary2026xyz",
		"päss wörd~!@#$%^*()",
		"a\\b\\c\"d'e\tf\ng",
	}
	r := NewRedactor()
	r.Add(secrets...)
	for _, v := range secrets {
		for name, form := range encodedForms(v) {
			text := `{"level":"error","error":"server said: ` + form + ` (end)"}`
			got := r.Redact(text)
			// The raw secret itself and the exact encoded form must both be gone.
			if strings.Contains(got, form) {
				t.Errorf("%q, form %s: still in %s", v, name, got)
			}
			if !strings.Contains(got, "***") {
				t.Errorf("%q, form %s: nothing masked in %s", v, name, got)
			}
		}
	}
}

func TestRedactor_BasicCredentialsAreMasked(t *testing.T) {
	r := NewRedactor()
	r.AddCredentials("ops@example.com", "CanaryBasicPw99")
	hdr := "Basic " + base64.StdEncoding.EncodeToString([]byte("ops@example.com:CanaryBasicPw99"))
	got := r.Redact(`echo: {"Authorization":["` + hdr + `"]}`)
	if strings.Contains(got, hdr[6:]) || strings.Contains(got, "CanaryBasicPw99") {
		t.Errorf("basic credentials leak: %s", got)
	}
}

// A secret equal to a common word (or a JSON key) must not turn keys or parts of
// other words into stars: only whole tokens in value positions are masked, and the
// output stays valid JSON.
func TestRedactor_WholeTokensOnly_JSONStaysValid(t *testing.T) {
	r := NewRedactor()
	r.Add("attempts", "messages", "password1")
	line := `{"level":"info","attempts":3,"message":"retrying: 2 attempts; attemptsX; Xattempts; value attempts","messages":"password1","passwords":"password12"}`
	got := r.Redact(line)
	var m map[string]any
	if err := json.Unmarshal([]byte(got), &m); err != nil {
		t.Fatalf("redacted line is not JSON: %v\n%s", err, got)
	}
	if _, ok := m["attempts"]; !ok {
		t.Errorf("a JSON key was masked: %s", got)
	}
	if _, ok := m["messages"]; !ok {
		t.Errorf("a JSON key was masked: %s", got)
	}
	if m["messages"] != "***" {
		t.Errorf("a secret value was not masked: %s", got)
	}
	if !strings.Contains(got, "attemptsX") || !strings.Contains(got, "Xattempts") {
		t.Errorf("a secret inside a longer word was masked: %s", got)
	}
	if !strings.Contains(got, "2 *** ;") && !strings.Contains(got, "2 ***;") {
		t.Errorf("a whole-token secret was not masked: %s", got)
	}
	if !strings.Contains(got, `"password12"`) {
		t.Errorf("a longer value that merely starts with a secret was masked: %s", got)
	}
	// A server echoing the secret as a key: masked inside an escaped JSON value,
	// and in an error text (a value as a whole).
	if got := r.Redact(`{"error":"echo {\"messages\":1}"}`); strings.Contains(got, "messages") {
		t.Errorf("an echoed key inside a value was not masked: %s", got)
	}
	if got := r.RedactValue(`HTTP 400: {"messages":1}`); strings.Contains(got, "messages") {
		t.Errorf("an echoed key in an error text was not masked: %s", got)
	}
}

func TestRedactor_OverlappingSecretsMaskedWhole(t *testing.T) {
	r := NewRedactor()
	r.Add("abcdefgh12", "gh12ijklmnop")
	got := r.Redact("x abcdefgh12ijklmnop y")
	if got != "x *** y" {
		t.Errorf("Redact = %q", got)
	}
}

func TestRedactor_ManySecretsStayFast(t *testing.T) {
	r := NewRedactor()
	for i := 0; i < 20000; i++ {
		r.Add("authkey-" + strings.Repeat("k", i%7) + "-" + strconv.Itoa(i) + "-canary")
	}
	got := r.Redact("error: authkey--19999-canary was refused; authkey-kkkkk-12346-canary too")
	if strings.Contains(got, "canary") {
		t.Errorf("Redact = %q", got)
	}
}

func BenchmarkRedactor_LogLine(b *testing.B) {
	r := NewRedactor()
	for i := 0; i < 10000; i++ {
		r.Add("authkey-" + strconv.Itoa(i) + "-canaryvalue")
	}
	line := `{"level":"debug","task":"store-0042","endpoint":"nxcloud","method":"POST","path":"/cdb/systems/bind","status":200,"took":1.2,"message":"request"}` + "\n"
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		r.Redact(line)
	}
}

// An API message clipped to a few hundred bytes may end inside a secret: the part
// before the "..." is masked too.
func TestRedactor_ClippedSecretIsMasked(t *testing.T) {
	r := NewRedactor()
	r.Add("ClippedCanarySecret2026")
	got := r.Redact("POST /x: HTTP 400: echo: password=ClippedCana... (truncated)")
	if strings.Contains(got, "ClippedCana") {
		t.Errorf("Redact = %q", got)
	}
	if got := r.Redact("wait... and 3 more"); got != "wait... and 3 more" {
		t.Errorf("Redact = %q", got)
	}
}

// FuzzRedactor: a JSON document holding a secret (as a value, next to other text)
// stays valid JSON after redaction and no longer holds the secret's escaped form;
// a secret standing alone in a text is always masked.
func FuzzRedactor(f *testing.F) {
	f.Add("Canary+Secret/With=Specials&<q>\"z\"", "before", "after")
	f.Add(`a\b\c"d'e	f`+"\n", "x", "y")
	f.Add("password1", "attempts", "password12")
	f.Add(`\u00e9abcdefgh`, `\`, `"`)
	f.Fuzz(func(t *testing.T, secret, before, after string) {
		if len(secret) < MinSecretLen || len(secret) > 200 || !utf8.ValidString(secret) || !utf8.ValidString(before) || !utf8.ValidString(after) {
			return
		}
		r := NewRedactor()
		r.Add(secret)
		if got := r.RedactValue("x " + secret + " y"); strings.Contains(got, secret) {
			t.Fatalf("a secret standing alone was not masked: %q", got)
		}
		doc, _ := json.Marshal(map[string]string{"error": before + " " + secret + " " + after, "level": "info"})
		got := r.Redact(string(doc))
		var m map[string]string
		if err := json.Unmarshal([]byte(got), &m); err != nil {
			t.Fatalf("not JSON after redaction: %v\n%s\n%s", err, doc, got)
		}
		if _, ok := m["level"]; !ok {
			t.Fatalf("a key was masked: %s", got)
		}
		if strings.Contains(m["error"], " "+secret+" ") {
			t.Fatalf("the secret survived in the JSON value: %s", got)
		}
	})
}

func BenchmarkRedactor_Add(b *testing.B) {
	r := NewRedactor()
	i := 0
	for b.Loop() {
		r.Add("authkey-" + strconv.Itoa(i) + "-canaryvalue")
		i++
	}
}
