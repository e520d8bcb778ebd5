package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
)

// helpOf is the --help text of a command (or state sub-command).
func helpOf(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := cli(t, append(args, "--help")...)
	if code != ExitOK {
		t.Fatalf("%v --help: exit %d\n%s%s", args, code, out, errs)
	}
	return out + errs
}

func TestCLI_Help_ListsOnlyTheCommandsOwnFlags(t *testing.T) {
	for _, tc := range []struct {
		cmd        []string
		want, not_ []string
	}{
		{[]string{"validate"}, []string{"--var NAME=VALUE"}, []string{"--state", "--shard", "--sandbox", "--fault-", "--log-level"}},
		{[]string{"graph"}, []string{"--shard I/N"}, []string{"--state", "--sandbox", "--fault-"}},
		{[]string{"status"}, []string{"--state FILE", "--sandbox "}, []string{"--sandbox-url", "--fault-", "--log-level"}},
		{[]string{"state", "list"}, []string{"--status STATUS", "--state FILE"}, []string{"--fault-", "--sandbox-url"}},
		{[]string{"plan"}, []string{"--sandbox-url URL", "Sandbox faults", "--fault-5xx FRACTION"}, nil},
		{[]string{"apply"}, []string{"--sandbox-url URL", "--log-level LEVEL", "Sandbox faults", "--fault-latency DURATION"}, nil},
		{[]string{"destroy"}, []string{"--sandbox-url URL", "Sandbox faults"}, nil},
		{[]string{"sandbox"}, []string{"--listen ADDR", "Sandbox faults", "--fault-seed N"}, []string{"--state", "--sandbox-url"}},
	} {
		t.Run(strings.Join(tc.cmd, "_"), func(t *testing.T) {
			h := helpOf(t, tc.cmd...)
			for _, w := range tc.want {
				if !strings.Contains(h, w) {
					t.Errorf("help lacks %q:\n%s", w, h)
				}
			}
			for _, n := range tc.not_ {
				if strings.Contains(h, n) {
					t.Errorf("help lists %q:\n%s", n, h)
				}
			}
		})
	}
}

// Every flag of every command: booleans show no argument, others a placeholder
// naming what they take (never "value", "string", a Go type or a command).
func TestCLI_Help_PlaceholdersNameWhatFlagsTake(t *testing.T) {
	ph := regexp.MustCompile(`^[A-Z][A-Z0-9/=_]*$`)
	n := 0
	for _, c := range commands() {
		subs := []string{""}
		if len(c.subs) > 0 && c.flags {
			subs = c.subs
		}
		for _, sub := range subs {
			fs := flagsOf(c, sub)
			if c.flags && fs == nil {
				t.Fatalf("%s %s: no flag set captured", c.name, sub)
			}
			if fs == nil {
				continue
			}
			args := []string{c.name}
			if sub != "" {
				args = append(args, sub)
			}
			h := helpOf(t, args...)
			for _, f := range compFlags(fs) {
				n++
				if f.placeholder == "" {
					if !regexp.MustCompile(`(?m)^  --` + regexp.QuoteMeta(f.name) + `  `).MatchString(h) {
						t.Errorf("%v --%s: boolean shown with an argument:\n%s", args, f.name, h)
					}
					continue
				}
				if !ph.MatchString(f.placeholder) || f.placeholder == "VALUE" {
					t.Errorf("%v --%s: placeholder %q does not name what it takes", args, f.name, f.placeholder)
				}
				if !strings.Contains(h, "--"+f.name+" "+f.placeholder) {
					t.Errorf("%v: help lacks --%s %s", args, f.name, f.placeholder)
				}
			}
		}
	}
	if n < 60 {
		t.Fatalf("only %d flags seen", n)
	}
}

func TestCLI_HelpCommand_WorksLikeDashDashHelp(t *testing.T) {
	for _, cmd := range []string{"apply", "validate", "status", "sandbox"} {
		code, out, _ := cli(t, "help", cmd)
		if code != ExitOK || out != helpOf(t, cmd) || !strings.HasPrefix(out, "Usage: provision "+cmd) {
			t.Fatalf("help %s: exit %d\n%s", cmd, code, out)
		}
	}
	code, out, _ := cli(t, "help", "state", "list")
	if code != ExitOK || !strings.Contains(out, "--status STATUS") {
		t.Fatalf("help state list: %d\n%s", code, out)
	}
	code, _, errs := cli(t, "help", "nope")
	if code != ExitBadInput || !strings.Contains(errs, `help "nope"`) {
		t.Fatalf("help nope: %d %s", code, errs)
	}
	// The usage lists every command of the table.
	_, out, _ = cli(t, "help")
	for _, c := range commands() {
		if !strings.Contains(out, "provision "+c.name) {
			t.Errorf("usage lacks %s", c.name)
		}
	}
}

func TestCLI_HelpSections_OneSection(t *testing.T) {
	code, out, _ := cli(t, "help", "sections", "nx_shares")
	if code != ExitOK || !strings.HasPrefix(out, "nx_shares:") || strings.Contains(out, "\nhttp:") || strings.Contains(out, "milestones:") {
		t.Fatalf("help sections nx_shares: %d\n%s", code, out)
	}
	code, _, errs := cli(t, "help", "sections", "nx_sharez")
	if code != ExitBadInput || !strings.Contains(errs, "no such section") || !strings.Contains(errs, "nx_shares") {
		t.Fatalf("unknown section: %d %s", code, errs)
	}
}

func TestCLI_Version(t *testing.T) {
	_, a, _ := cli(t, "version")
	_, b, _ := cli(t, "--version")
	if a != b || !strings.HasPrefix(a, "provision ") || !strings.Contains(a, "revision ") {
		t.Fatalf("version %q, --version %q", a, b)
	}
}

func TestVersionFrom_NamesModuleVersionAndRevision(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Path: "provision", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.modified", Value: "true"}}}
	if got, want := versionFrom("dev", bi), "provision v1.2.3 (module provision, revision 0123abcd (modified), go1.99)"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got := versionFrom("v9", bi); !strings.HasPrefix(got, "provision v9 ") {
		t.Fatalf("-ldflags version not kept: %q", got)
	}
	if got := versionFrom("dev", nil); got != "provision dev (module provision, revision unknown, unknown)" {
		t.Fatalf("no build info: %q", got)
	}
}

func TestCompletion_ScriptsComeFromTheCommandTable(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		t.Run(sh, func(t *testing.T) {
			code, out, errs := cli(t, "completion", sh)
			if code != ExitOK {
				t.Fatalf("exit %d %s", code, errs)
			}
			for _, c := range completionSpec() {
				if !strings.Contains(out, c.name) {
					t.Errorf("%s script lacks command %s", sh, c.name)
				}
				for _, f := range c.flags {
					if !strings.Contains(out, f.name) {
						t.Errorf("%s script lacks %s --%s", sh, c.name, f.name)
					}
				}
			}
			if bin, err := exec.LookPath(sh); err == nil {
				check := map[string][]string{"bash": {"-n"}, "zsh": {"-n"}, "fish": {"--no-execute"}}[sh]
				p := filepath.Join(t.TempDir(), "comp."+sh)
				os.WriteFile(p, []byte(out), 0o600)
				if b, err := exec.Command(bin, append(check, p)...).CombinedOutput(); err != nil {
					t.Fatalf("%s rejects the script: %v\n%s", sh, err, b)
				}
			}
		})
	}
	if code, _, _ := cli(t, "completion", "tcsh"); code != ExitBadInput {
		t.Fatalf("completion tcsh: exit %d", code)
	}
}

// The bash script completes commands, sub-commands and flags when bash runs it.
func TestCompletion_BashCompletes(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	_, script, _ := cli(t, "completion", "bash")
	p := filepath.Join(t.TempDir(), "comp.bash")
	os.WriteFile(p, []byte(script), 0o600)
	for _, tc := range []struct {
		words string
		want  []string
		not_  []string
	}{
		{"provision ap", []string{"apply"}, []string{"plan"}},
		{"provision apply --sandbox", []string{"--sandbox", "--sandbox-url"}, []string{"--state"}},
		{"provision validate --", []string{"--var", "--help"}, []string{"--state", "--fault-5xx"}},
		{"provision state ", []string{"list", "show", "forget"}, nil},
		{"provision state list --st", []string{"--state", "--status"}, nil},
		{"provision help ", []string{"sections", "exit-codes", "apply"}, nil},
	} {
		words := strings.Fields(tc.words)
		cword := len(words)
		if strings.HasSuffix(tc.words, " ") {
			words = append(words, "")
		} else {
			cword--
		}
		q := make([]string, len(words))
		for i, w := range words {
			q[i] = "'" + w + "'"
		}
		prog := "source " + p + "; COMP_WORDS=(" + strings.Join(q, " ") + "); COMP_CWORD=" + string(rune('0'+cword)) + "; _provision; printf '%s\\n' \"${COMPREPLY[@]}\""
		b, err := exec.Command(bash, "--norc", "-c", prog).CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", tc.words, err, b)
		}
		got := "\n" + string(b)
		for _, w := range tc.want {
			if !strings.Contains(got, "\n"+w+"\n") {
				t.Errorf("%q: want %s among\n%s", tc.words, w, b)
			}
		}
		for _, w := range tc.not_ {
			if strings.Contains(got, "\n"+w+"\n") {
				t.Errorf("%q: %s offered:\n%s", tc.words, w, b)
			}
		}
	}
}

func TestCLI_Status_NoRunYet(t *testing.T) {
	t.Setenv("CLI_TEST_SECRET", "cli-secret-canary-93")
	dir := t.TempDir()
	p := writeFile(t, dir, "widgets.yaml", widgetsPlan)
	code, out, errs := cli(t, "status", p)
	if code != ExitOK || !strings.Contains(out, "no run yet for this plan") || strings.Contains(out+errs, "no such file") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	code, out, _ = cli(t, "status", p, "--json")
	if code != ExitOK || !strings.Contains(out, "no run yet for this plan") {
		t.Fatalf("json: exit %d\n%s", code, out)
	}
}

func TestCLI_FaultFlagsNeedASandbox(t *testing.T) {
	t.Setenv("CLI_TEST_SECRET", "cli-secret-canary-93")
	dir := t.TempDir()
	p := writeFile(t, dir, "widgets.yaml", widgetsPlan)
	code, _, errs := cli(t, "plan", p, "--fault-5xx", "0.1")
	if code != ExitBadInput || !strings.Contains(errs, "--sandbox") {
		t.Fatalf("exit %d %s", code, errs)
	}
	if code, _, errs := cli(t, "validate", p, "--fault-5xx", "0.1"); code != ExitBadInput || !strings.Contains(errs, "fault-5xx") {
		t.Fatalf("validate --fault-5xx: exit %d %s", code, errs)
	}
}
