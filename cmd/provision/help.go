package main

// The command table, help output, --version and shell completion. Everything here
// derives from one table (commands) and from the flag sets the commands themselves
// build, so that help, usage and completion cannot drift from what the CLI parses.

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"sort"
	"strings"
)

// command is one entry of the command table.
type command struct {
	name    string
	args    string // as shown in the usage
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
	// subs are the sub-commands (state) or topics (help, completion).
	subs []string
	// flags: the command builds a flag set (false for help, version, completion).
	flags bool
}

// commands is the CLI's command table: run dispatches through it, the usage and
// the shell completion are written from it.
func commands() []command {
	return []command{
		{name: "validate", args: "PLAN", summary: "check a plan; no remote call, no state, no secret read", run: cmdValidate, flags: true},
		{name: "plan", args: "PLAN", summary: "dry run: what apply would do, grouped by section, with totals", run: cmdPlan, flags: true},
		{name: "apply", args: "PLAN", summary: "run the plan (rerun to resume; --prune deletes removed items)", run: cmdApply, flags: true},
		{name: "destroy", args: "PLAN", summary: "delete what the plan created (--only part of it; --dry-run)", run: cmdDestroy, flags: true},
		{name: "status", args: "[PLAN]", summary: "what the state file says: counts, failures", run: cmdStatus, flags: true},
		{name: "state", args: "list|show|forget", summary: "tasks of the state, one task, mark tasks in doubt", run: cmdState, subs: []string{"list", "show", "forget"}, flags: true},
		{name: "report", args: "PLAN --html FILE", summary: "a self-contained HTML report of the state (with --events: of the run)", run: cmdReport, flags: true},
		{name: "graph", args: "PLAN", summary: "the task graph in Graphviz DOT", run: cmdGraph, flags: true},
		{name: "sandbox", args: "PLAN", summary: "serve fake vendor APIs on localhost", run: cmdSandbox, flags: true},
		{name: "help", args: "[COMMAND|TOPIC]", summary: "this text, a command's help, or a topic: sections [NAME], exit-codes", run: cmdHelpRun, subs: []string{"sections", "exit-codes"}},
		{name: "completion", args: "bash|zsh|fish", summary: "print a shell completion script", run: cmdCompletion, subs: []string{"bash", "zsh", "fish"}},
		{name: "version", summary: "the module version and VCS revision (also --version)", run: cmdVersion},
	}
}

func findCommand(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

const usageHead = `provision runs a provisioning plan against vendor APIs: many systems, users and
edge resources, expanded into a dependency-ordered task graph, run concurrently and
checkpointed so that rerunning the same command resumes after a failure or a kill.

Usage:
`

const usageTail = `
Run "provision COMMAND --help" (or "provision help COMMAND") for the options of a command.

Exit codes: 0 all done, 1 some tasks failed or were skipped, 2 bad plan, flags or
state file (nothing changed), 3 interrupted (rerun the same command to resume),
4 plan --exit-code found changes ("provision help exit-codes").
`

// usageText is the top-level help, written from the command table.
func usageText() string {
	var b strings.Builder
	b.WriteString(usageHead)
	for _, c := range commands() {
		left := strings.TrimSpace("provision " + c.name + " " + c.args)
		fmt.Fprintf(&b, "  %-34s %s\n", left, c.summary)
	}
	b.WriteString(usageTail)
	return b.String()
}

func cmdHelpRun(_ context.Context, args []string, stdout, _ io.Writer) error {
	return cmdHelp(args, stdout)
}

// cmdHelp prints the usage, one command's help (as COMMAND --help does), or a topic.
func cmdHelp(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stdout, usageText())
		return nil
	}
	switch args[0] {
	case "sections":
		return helpSections(args[1:], stdout)
	case "exit-codes":
		fmt.Fprint(stdout, exitCodesHelp)
		return nil
	}
	if c, ok := findCommand(args[0]); ok && c.flags {
		// Help goes to stdout when asked for with help COMMAND.
		return c.run(context.Background(), append(append([]string{}, args[1:]...), "--help"), stdout, stdout)
	}
	return withCode(ExitBadInput, fmt.Errorf("help %q: want a command (%s) or a topic (sections [NAME], exit-codes)", args[0], strings.Join(commandNames(true), ", ")))
}

// helpSections prints every plan section, or the named ones.
func helpSections(names []string, stdout io.Writer) error {
	reg := registry()
	if len(names) == 0 {
		for _, s := range reg.Sections() {
			k, _ := reg.Kind(s)
			fmt.Fprintln(stdout, strings.TrimSpace(k.Doc()))
			fmt.Fprintln(stdout)
		}
		return nil
	}
	for _, n := range names {
		k, ok := reg.Kind(n)
		if !ok {
			return withCode(ExitBadInput, fmt.Errorf("help sections %q: no such section; sections: %s", n, strings.Join(reg.Sections(), ", ")))
		}
		fmt.Fprintln(stdout, strings.TrimSpace(k.Doc()))
	}
	return nil
}

func commandNames(withFlagsOnly bool) []string {
	var out []string
	for _, c := range commands() {
		if !withFlagsOnly || c.flags {
			out = append(out, c.name)
		}
	}
	return out
}

func cmdVersion(_ context.Context, _ []string, stdout, _ io.Writer) error {
	fmt.Fprintln(stdout, versionText())
	return nil
}

// versionText names the module version and the VCS revision the binary was built
// from (runtime/debug.ReadBuildInfo); -ldflags "-X main.version=..." overrides the
// version.
func versionText() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return versionFrom(version, bi)
}

func versionFrom(ldVersion string, bi *debug.BuildInfo) string {
	v, mod, rev, dirty, goVer := ldVersion, "provision", "unknown", "", "unknown"
	if bi != nil {
		goVer = bi.GoVersion
		if bi.Main.Path != "" {
			mod = bi.Main.Path
		}
		if v == "dev" && bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = " (modified)"
				}
			}
		}
	}
	return fmt.Sprintf("provision %s (module %s, revision %s%s, %s)", v, mod, rev, dirty, goVer)
}

// Help output of a command's flags.

// printUsage is every flag set's Usage: the synopsis, then the command's own flags,
// the sandbox fault switches apart. Flags show as --name PLACEHOLDER (booleans
// without one).
func printUsage(w io.Writer, fs *flag.FlagSet, synopsis string) {
	fmt.Fprintf(w, "Usage: provision %s\n", synopsis)
	var own, faults []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if strings.HasPrefix(f.Name, "fault-") {
			faults = append(faults, f)
		} else {
			own = append(own, f)
		}
	})
	if len(own) > 0 {
		fmt.Fprintf(w, "\nFlags:\n")
		writeFlags(w, own)
	}
	if len(faults) > 0 {
		fmt.Fprintf(w, "\nSandbox faults (only where a sandbox starts: --sandbox, or provision sandbox):\n")
		writeFlags(w, faults)
	}
}

func writeFlags(w io.Writer, fl []*flag.Flag) {
	for _, f := range fl {
		ph, text := flagPlaceholder(f)
		left := "  --" + f.Name
		if ph != "" {
			left += " " + ph
		}
		if def := flagDefault(f); def != "" {
			text += " (default " + def + ")"
		}
		if len(left) <= 28 {
			fmt.Fprintf(w, "%-30s%s\n", left, text)
		} else {
			fmt.Fprintf(w, "%s\n%30s%s\n", left, "", text)
		}
	}
}

// flagPlaceholder is the name of what a flag takes (empty for booleans) and its
// usage text without the back-quotes.
func flagPlaceholder(f *flag.Flag) (string, string) {
	ph, text := flag.UnquoteUsage(f)
	if isBoolFlag(f) {
		return "", text
	}
	switch ph {
	case "", "value", "string":
		ph = "VALUE"
	case "duration":
		ph = "DURATION"
	case "int", "uint":
		ph = "N"
	case "float":
		ph = "FRACTION"
	}
	return ph, text
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func flagDefault(f *flag.Flag) string {
	switch f.DefValue {
	case "", "0", "0s", "false", "[]":
		return ""
	}
	return f.DefValue
}

// flagCapture is a writer that, given as a command's stderr together with --help,
// receives the command's flag set instead of its usage text (see newFlagSet).
type flagCapture struct {
	bytes.Buffer
	fs *flag.FlagSet
}

// flagsOf returns the flag set a command (or state sub-command) builds, by asking
// the command itself for --help: completion reads the very flags run parses.
func flagsOf(c command, sub string) *flag.FlagSet {
	if !c.flags {
		return nil
	}
	args := []string{"--help"}
	if sub != "" {
		args = []string{sub, "--help"}
	}
	fc := &flagCapture{}
	_ = c.run(context.Background(), args, io.Discard, fc)
	return fc.fs
}

// Shell completion. Written by hand on the std flag package: the CLI has a dozen
// commands and moving it to a framework would restructure every command for one
// feature; the scripts below are small and generated from the command table.

func cmdCompletion(_ context.Context, args []string, stdout, _ io.Writer) error {
	if len(args) != 1 {
		return withCode(ExitBadInput, fmt.Errorf("completion: want one shell: bash, zsh or fish"))
	}
	spec := completionSpec()
	switch args[0] {
	case "bash":
		writeBash(stdout, spec)
	case "zsh":
		writeZsh(stdout, spec)
	case "fish":
		writeFish(stdout, spec)
	default:
		return withCode(ExitBadInput, fmt.Errorf("completion %q: want bash, zsh or fish", args[0]))
	}
	return nil
}

// compFlag is one flag as completion knows it.
type compFlag struct {
	name, placeholder, help string
	takesFile               bool
}

// compCmd is one command as completion knows it: its words after it (sub-commands
// or topics) and flags (per sub-command for state).
type compCmd struct {
	name, summary string
	subs          []string
	flags         []compFlag            // the command's own flags (or, for state, the union)
	subFlags      map[string][]compFlag // state list|show|forget
}

func completionSpec() []compCmd {
	var out []compCmd
	for _, c := range commands() {
		cc := compCmd{name: c.name, summary: c.summary, subs: c.subs}
		switch {
		case c.name == "help":
			cc.subs = append(append([]string{}, c.subs...), commandNames(true)...)
		case c.flags && len(c.subs) > 0:
			cc.subFlags = map[string][]compFlag{}
			seen := map[string]bool{}
			for _, s := range c.subs {
				fl := compFlags(flagsOf(c, s))
				cc.subFlags[s] = fl
				for _, f := range fl {
					if !seen[f.name] {
						seen[f.name] = true
						cc.flags = append(cc.flags, f)
					}
				}
			}
		case c.flags:
			cc.flags = compFlags(flagsOf(c, ""))
		}
		out = append(out, cc)
	}
	return out
}

func compFlags(fs *flag.FlagSet) []compFlag {
	if fs == nil {
		return nil
	}
	var out []compFlag
	fs.VisitAll(func(f *flag.Flag) {
		ph, text := flagPlaceholder(f)
		if i := strings.IndexAny(text, ".;("); i > 0 {
			text = text[:i]
		}
		out = append(out, compFlag{name: f.Name, placeholder: ph, help: strings.TrimSpace(text),
			takesFile: ph == "FILE" || ph == "DIR"})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func flagWords(fl []compFlag) string {
	var w []string
	for _, f := range fl {
		w = append(w, "--"+f.name)
	}
	return strings.Join(w, " ")
}

// valueFlags lists the flags that take an argument, for the shell to know that the
// next word is a value, not a command word.
func valueFlags(spec []compCmd) []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range spec {
		for _, f := range c.flags {
			if f.placeholder != "" && !seen[f.name] {
				seen[f.name] = true
				out = append(out, "--"+f.name)
			}
		}
	}
	sort.Strings(out)
	return out
}

func writeBash(w io.Writer, spec []compCmd) {
	var names []string
	for _, c := range spec {
		names = append(names, c.name)
	}
	fmt.Fprintf(w, `# bash completion for provision; load with: source <(provision completion bash)
_provision() {
    local cur prev cmd sub i
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev="${COMP_WORDS[COMP_CWORD-1]}"
    cmd="" sub=""
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${COMP_WORDS[i]}" in
            -*) ;;
            *) if [[ -z $cmd ]]; then cmd="${COMP_WORDS[i]}"; elif [[ -z $sub ]]; then sub="${COMP_WORDS[i]}"; fi ;;
        esac
    done
    if [[ -z $cmd ]]; then
        COMPREPLY=($(compgen -W "%s --version --help" -- "$cur"))
        return
    fi
    case "$prev" in
        %s) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    esac
    local flags="" words=""
    case "$cmd" in
`, strings.Join(names, " "), strings.Join(valueFlags(spec), "|"))
	for _, c := range spec {
		fmt.Fprintf(w, "        %s)\n", c.name)
		if len(c.subFlags) > 0 {
			fmt.Fprintf(w, "            case \"$sub\" in\n")
			for _, s := range c.subs {
				fmt.Fprintf(w, "                %s) flags=%q ;;\n", s, flagWords(c.subFlags[s]))
			}
			fmt.Fprintf(w, "            esac\n")
		} else {
			fmt.Fprintf(w, "            flags=%q\n", flagWords(c.flags))
		}
		if len(c.subs) > 0 {
			fmt.Fprintf(w, "            [[ -z $sub ]] && words=%q\n", strings.Join(c.subs, " "))
		}
		fmt.Fprintf(w, "            ;;\n")
	}
	fmt.Fprint(w, `    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$flags --help" -- "$cur"))
    elif [[ -n $words ]]; then
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}
complete -o filenames -F _provision provision
`)
}

func zshQuote(s string) string {
	s = strings.NewReplacer(`'`, `'\''`, `[`, `\[`, `]`, `\]`, `:`, `\:`).Replace(s)
	return s
}

func writeZsh(w io.Writer, spec []compCmd) {
	fmt.Fprint(w, `#compdef provision
# zsh completion for provision; load with: source <(provision completion zsh)
# (or save as _provision in a directory of $fpath)
_provision() {
    local -a cmds
    cmds=(
`)
	for _, c := range spec {
		fmt.Fprintf(w, "        '%s:%s'\n", c.name, zshQuote(c.summary))
	}
	fmt.Fprint(w, `    )
    if (( CURRENT == 2 )); then
        _describe -t commands 'provision command' cmds
        return
    fi
    local cmd=${words[2]}
    local -a args
    case $cmd in
`)
	for _, c := range spec {
		fmt.Fprintf(w, "        %s)\n            args=(\n", c.name)
		for _, f := range c.flags {
			action := ""
			if f.placeholder != "" {
				action = ":" + strings.ToLower(f.placeholder) + ":"
				if f.takesFile {
					action += "_files"
				}
			}
			fmt.Fprintf(w, "                '--%s[%s]%s'\n", f.name, zshQuote(f.help), action)
		}
		if len(c.subs) > 0 {
			fmt.Fprintf(w, "                '1:%s:(%s)'\n", c.name, strings.Join(c.subs, " "))
		}
		fmt.Fprintf(w, "                '*:file:_files'\n            )\n            ;;\n")
	}
	fmt.Fprint(w, `    esac
    shift words
    (( CURRENT-- ))
    _arguments -s $args
}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
    _provision "$@"
else
    compdef _provision provision
fi
`)
}

func fishQuote(s string) string { return strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) }

func writeFish(w io.Writer, spec []compCmd) {
	var names []string
	for _, c := range spec {
		names = append(names, c.name)
	}
	all := strings.Join(names, " ")
	fmt.Fprintf(w, "# fish completion for provision; load with: provision completion fish | source\n")
	fmt.Fprintf(w, "complete -c provision -f\n")
	for _, c := range spec {
		fmt.Fprintf(w, "complete -c provision -n 'not __fish_seen_subcommand_from %s' -a %s -d '%s'\n", all, c.name, fishQuote(c.summary))
	}
	for _, c := range spec {
		cond := "__fish_seen_subcommand_from " + c.name
		for _, s := range c.subs {
			fmt.Fprintf(w, "complete -c provision -n '%s; and not __fish_seen_subcommand_from %s' -a %s\n", cond, strings.Join(c.subs, " "), s)
		}
		for _, f := range c.flags {
			extra := ""
			if f.placeholder != "" {
				extra = " -r"
				if f.takesFile {
					extra += " -F"
				}
			}
			fmt.Fprintf(w, "complete -c provision -n '%s' -l %s%s -d '%s'\n", cond, f.name, extra, fishQuote(f.help))
		}
		if len(c.flags) > 0 && len(c.subs) == 0 {
			fmt.Fprintf(w, "complete -c provision -n '%s' -F\n", cond)
		}
	}
}
