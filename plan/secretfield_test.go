package plan

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// secretSpec is an item spec with secret fields, as providers declare them.
type secretSpec struct {
	Endpoint string `yaml:"endpoint"`
	Admin    struct {
		Username string `yaml:"username"`
		Password Secret `yaml:"password"`
	} `yaml:"admin"`
	Password Secret            `yaml:"password"`
	Note     string            `yaml:"note"`
	Headers  map[string]string `yaml:"headers"`
}

func parseErr(t *testing.T, text string, o LoadOptions) string {
	t.Helper()
	_, err := Parse("p.yaml", []byte(text), o)
	if err == nil {
		t.Fatalf("accepted:\n%s", text)
	}
	return err.Error()
}

func TestLoad_LiteralInEndpointSecretField_RefusedWithPositionAndRemedy(t *testing.T) {
	text := "version: 1\nname: s\nendpoints:\n  api:\n    kind: http\n    url: https://a.example\n    auth: {type: basic, username: ops, password: LiteralCanary2026}\n"
	msg := parseErr(t, text, opts())
	for _, want := range []string{"p.yaml:7:50: endpoints.api.auth.password:", "${env.NAME}", "${file.PATH}"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "LiteralCanary2026") {
		t.Errorf("the literal secret is quoted: %s", msg)
	}
	// A plan var is written in the plan too: the same refusal.
	text = "version: 1\nname: s\nvars: {pw: LiteralCanary2026}\nendpoints:\n  api:\n    kind: http\n    url: https://a.example\n    auth: {type: basic, username: ops, password: '${var.pw}'}\n"
	if msg := parseErr(t, text, opts()); !strings.Contains(msg, "p.yaml:8:50: endpoints.api.auth.password:") || strings.Contains(msg, "LiteralCanary2026") {
		t.Errorf("var in a secret field: %s", msg)
	}
}

func TestLoad_CommandLineVarInSecretField_Refused(t *testing.T) {
	text := "version: 1\nname: s\nvars: {pw: ''}\nendpoints:\n  api:\n    kind: http\n    url: https://a.example\n    auth: {type: basic, username: ops, password: '${var.pw}'}\n"
	o := opts()
	o.Vars = map[string]string{"pw": "CmdlineCanary2026"}
	msg := parseErr(t, text, o)
	if !strings.Contains(msg, "--var pw") || !strings.Contains(msg, "/proc") || strings.Contains(msg, "CmdlineCanary2026") {
		t.Errorf("error: %s", msg)
	}
}

func TestLoad_ShortSecretRefusedWithPosition(t *testing.T) {
	o := opts()
	o.Getenv = func(string) (string, bool) { return "done123", true } // 7 characters
	text := "version: 1\nname: s\nendpoints:\n  api: {kind: http, url: 'https://a.example', auth: {token: '${env.T}'}}\n"
	msg := parseErr(t, text, o)
	if !strings.Contains(msg, "p.yaml:4:") || !strings.Contains(msg, "8 characters") || strings.Contains(msg, "done123") {
		t.Errorf("error: %s", msg)
	}
}

func decodeItems(t *testing.T, text string, o LoadOptions) (*Plan, []error) {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "pw.csv"), []byte("store,pw\na,RowCanaryOne1\nb,RowCanaryTwo2\n"), 0o600)
	p := filepath.Join(dir, "p.yaml")
	os.WriteFile(p, []byte(text), 0o600)
	pl, err := Load(p, o)
	if err != nil {
		t.Fatal(err)
	}
	var errs []error
	for _, it := range pl.Items {
		var s secretSpec
		if err := DecodeItem(it, &s); err != nil {
			errs = append(errs, err)
		}
	}
	return pl, errs
}

func TestDecodeItem_SecretFields(t *testing.T) {
	head := "version: 1\nname: s\nhttp:\n  items:\n"
	t.Run("literal refused", func(t *testing.T) {
		_, errs := decodeItems(t, head+"    - name: a\n      password: ItemLiteral2026\n", opts())
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), "p.yaml:6:17: password:") || !strings.Contains(errs[0].Error(), "${env.NAME}") || strings.Contains(errs[0].Error(), "ItemLiteral2026") {
			t.Fatalf("errs = %v", errs)
		}
	})
	t.Run("factory default admin accepted", func(t *testing.T) {
		pl, errs := decodeItems(t, head+"    - name: a\n      admin: {username: admin, password: admin}\n", opts())
		if len(errs) != 0 {
			t.Fatalf("errs = %v", errs)
		}
		if got := pl.Redactor.Redact("user admin logged in"); got != "user admin logged in" {
			t.Errorf("the public default was registered as a secret: %q", got)
		}
	})
	t.Run("CSV value registered", func(t *testing.T) {
		pl, errs := decodeItems(t, head+"    - name: s-${row.store}\n      foreach: {csv: pw.csv}\n      password: ${row.pw}\n", opts())
		if len(errs) != 0 {
			t.Fatalf("errs = %v", errs)
		}
		if got := pl.Redactor.Redact("a RowCanaryOne1 b RowCanaryTwo2"); got != "a *** b ***" {
			t.Errorf("CSV secrets not registered: %q", got)
		}
	})
	t.Run("CSV value too short", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "pw.csv"), []byte("store,pw\na,short\n"), 0o600)
		p := filepath.Join(dir, "p.yaml")
		os.WriteFile(p, []byte(head+"    - name: s-${row.store}\n      foreach: {csv: pw.csv}\n      password: ${row.pw}\n"), 0o600)
		pl, err := Load(p, opts())
		if err != nil {
			t.Fatal(err)
		}
		var s secretSpec
		err = DecodeItem(pl.Items[0], &s)
		if err == nil || !strings.Contains(err.Error(), "8 characters") || strings.Contains(err.Error(), "short") && strings.Contains(err.Error(), `"short"`) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("secret reference accepted", func(t *testing.T) {
		_, errs := decodeItems(t, head+"    - name: a\n      password: ${env.X}\n      note: plain text is fine here\n", opts())
		if len(errs) != 0 {
			t.Fatalf("errs = %v", errs)
		}
	})
}
