package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/term"

	"provision/plan"
	"provision/providers"
	"provision/providers/sandbox"
	"provision/runner"
	"provision/state"
)

const exitCodesHelp = `Exit codes:
  0  every selected task is done (or, for validate/plan/status, the command succeeded)
  1  some tasks failed, were skipped after a failed dependency, or are in doubt
  2  bad input: plan, flags or --var values, or an unusable state file (corrupt, locked
     by another run, from another plan or written against other endpoints, wrong
     PROVISION_STATE_KEY); nothing was changed
  3  interrupted by SIGINT/SIGTERM: in-flight tasks were allowed to finish (or stay in
     doubt after a second signal); rerun the same command to resume
  4  plan --exit-code only: the plan would change something (create, update, retry,
     remove, drift found with --refresh)
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText())
		return errQuiet(ExitBadInput)
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "-h", "--help", "-help":
		return cmdHelp(rest, stdout)
	case "--version", "-version":
		return cmdVersion(ctx, rest, stdout, stderr)
	}
	if c, ok := findCommand(cmd); ok {
		return c.run(ctx, rest, stdout, stderr)
	}
	fmt.Fprint(stderr, usageText())
	return withCode(ExitBadInput, fmt.Errorf("unknown command %q", cmd))
}

// common holds the flags shared by the plan commands.
type common struct {
	vars       varFlags
	statePath  string
	logFormat  string
	logLevel   string
	sandbox    bool
	sandboxURL string
	// sandboxState: the command reads the sandbox rehearsal's state (status, state).
	sandboxState bool
	// secrets: validate, graph and the state readers check secret references
	// without reading them (plan.CheckSecrets); plan, apply and destroy read them.
	secrets  plan.SecretMode
	retarget bool
	shard    string
	faults   faultFlags
	probe    bool
	cmd      string // the command's name, for flag errors
	refresh  bool
}

// flagGroup selects which of the shared flags a command takes.
type flagGroup uint8

const (
	flagState   flagGroup = 1 << iota // --state
	flagShard                         // --shard
	flagLog                           // --log-format, --log-level
	flagSandbox                       // --sandbox, --sandbox-url
	flagFaults                        // --fault-*: only where a sandbox starts
	// flagSandboxState: --sandbox only picks the sandbox rehearsal's state file
	// (commands that read a state and start no sandbox).
	flagSandboxState
)

// register registers the shared flags of the groups a command takes (--var always).
func (c *common) register(fs *flag.FlagSet, groups flagGroup) {
	c.cmd = fs.Name()
	fs.Var(&c.vars, "var", "set a plan var: `NAME=VALUE` (repeatable)")
	if groups&flagState != 0 {
		fs.StringVar(&c.statePath, "state", "", "state `FILE` (default: .provision/<plan name>.db next to the plan)")
	}
	if groups&flagShard != 0 {
		fs.StringVar(&c.shard, "shard", "", "run shard `I/N` of the plan (connected components split into N shards; own state file)")
	}
	if groups&flagLog != 0 {
		fs.StringVar(&c.logFormat, "log-format", "console", "log `FORMAT`: console or json")
		fs.StringVar(&c.logLevel, "log-level", "info", "log `LEVEL`: debug (every request), info, warn, error")
	}
	if groups&flagSandbox != 0 {
		fs.BoolVar(&c.sandbox, "sandbox", false, "start the fake vendor APIs in-process and point the plan's endpoints at them (own state file: .provision/<plan name>.sandbox.db)")
		fs.StringVar(&c.sandboxURL, "sandbox-url", "", "point the plan's endpoints at a running sandbox (provision sandbox) at `URL`; its state outlives each run; own state file: .provision/<plan name>.sandbox.db")
	}
	if groups&flagSandboxState != 0 {
		fs.BoolVar(&c.sandboxState, "sandbox", false, "read the sandbox rehearsal's state file (.provision/<plan name>.sandbox.db)")
		fs.StringVar(&c.sandboxURL, "sandbox-url", "", "read the state of a rehearsal against the sandbox at `URL` (.provision/<plan name>.sandbox.db, its target that sandbox); nothing is started or sent")
	}
	if groups&flagFaults != 0 {
		c.faults.register(fs)
	}
}

// varFlags collects --var NAME=VALUE.
type varFlags map[string]string

func (v *varFlags) String() string { return "" }
func (v *varFlags) Set(s string) error {
	name, val, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return fmt.Errorf("want NAME=VALUE, got %q", s)
	}
	if *v == nil {
		*v = varFlags{}
	}
	(*v)[name] = val
	return nil
}

// parse parses flags and returns the single PLAN argument. A mistake is one line
// naming the flag or argument at fault and pointing at --help, not the whole usage.
func parse(fs *flag.FlagSet, args []string, stderr io.Writer, want string) ([]string, error) {
	fs.SetOutput(io.Discard) // the flag package would print the whole usage after each mistake
	// Accept flags after positional arguments too ("provision apply plan.yaml --parallel 8").
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(stderr)
				fs.Usage()
				return nil, errQuiet(ExitOK)
			}
			return nil, flagError(fs, err)
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	fs.SetOutput(stderr)
	switch want {
	case "plan":
		if len(pos) != 1 {
			return nil, flagError(fs, fmt.Errorf("want exactly one PLAN file, got %d arguments", len(pos)))
		}
	case "none":
		if len(pos) != 0 {
			return nil, flagError(fs, fmt.Errorf("unexpected arguments %q", pos))
		}
	}
	return pos, nil
}

// flagError is a bad-input error about the command line of fs's command, in one line
// that ends by pointing at the command's --help.
func flagError(fs *flag.FlagSet, err error) error {
	return withCode(ExitBadInput, fmt.Errorf("%s: %v; see provision %s --help", fs.Name(), err, fs.Name()))
}

func newFlagSet(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		if fc, ok := fs.Output().(*flagCapture); ok {
			fc.fs = fs // flagsOf: the flag set itself, not its text
			return
		}
		printUsage(fs.Output(), fs, synopsis)
	}
	return fs
}

// logger builds the run's logger; everything it writes passes the redactor.
func (c *common) logger(stderr io.Writer, red *plan.Redactor) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(c.logLevel)
	if err != nil || c.logLevel == "" {
		return zerolog.Nop(), c.flagErr("--log-level %q: want debug, info, warn or error", c.logLevel)
	}
	w := red.Writer(stderr)
	switch c.logFormat {
	case "json":
		return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
	case "console":
		cw := zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05", NoColor: !newPalette(stderr).on}
		return zerolog.New(cw).Level(lvl).With().Timestamp().Logger(), nil
	}
	return zerolog.Nop(), c.flagErr("--log-format %q: want console or json", c.logFormat)
}

// flagErr is a bad-input error about one flag of c's command, in one line that ends
// by pointing at the command's --help.
func (c *common) flagErr(format string, a ...any) error { return cmdFlagErr(c.cmd, format, a...) }

func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && f.Fd() != ^uintptr(0) && term.IsTerminal(int(f.Fd()))
}

// loaded is a plan turned into a graph.
type loaded struct {
	plan    *plan.Plan
	graph   *runner.Graph
	items   int
	sandbox *sandboxRun
	build   *providers.Build // the clients the tasks were built with (deletes use them too)
	// target is the identity of the endpoints this run reaches (state.Options.Target).
	target map[string]string
}

// targetOf describes, per endpoint, what a run reaches: kind, URL and the account
// it acts as (never a secret). A sandbox run says so, so that its records can never
// pass for those of a real run (or the other way round).
func targetOf(p *plan.Plan, sandboxMode string) map[string]string {
	t := make(map[string]string, len(p.Endpoints))
	for name, ep := range p.Endpoints {
		id := ep.Kind + " " + ep.URL
		for _, f := range ep.Identity {
			id += " " + f
		}
		if sandboxMode != "" {
			id = sandboxMode + " standing in for " + id
		}
		t[name] = id
	}
	return t
}

// load reads, expands, builds and checks the plan. Every problem is returned at once,
// as a bad-input error.
func (c *common) load(ctx context.Context, path string, stderr io.Writer) (*loaded, error) {
	reg := registry()
	o := reg.LoadOptions()
	o.Vars, o.Secrets = c.vars, c.secrets
	var sp *sandboxSecrets
	if c.sandbox || c.sandboxURL != "" {
		sp = &sandboxSecrets{}
		o.Getenv = sp.getenv
	}
	p, err := plan.Load(path, o)
	if err != nil {
		return nil, withCode(ExitBadInput, fmt.Errorf("plan %s is invalid:\n%s", path, indent(err)))
	}
	sp.tell(stderr)
	l := &loaded{plan: p, items: len(p.Items)}
	l.build = &providers.Build{Plan: p, Clients: &providers.Clients{}}
	if err := c.aim(ctx, l); err != nil {
		return nil, err
	}
	tasks, errs := buildTasks(reg, l.build)
	if len(errs) > 0 {
		l.close()
		return nil, withCode(ExitBadInput, fmt.Errorf("plan %s is invalid:\n%s", path, indent(uniqueErrors(errs, 100))))
	}
	g, err := c.graph(path, tasks)
	if err != nil {
		l.close()
		return nil, err
	}
	l.graph = g
	return l, nil
}

// aim points the loaded plan at its target: the real endpoints, the in-process
// sandbox (started here, with the --fault-* flags) or a sandbox at --sandbox-url
// (the plan's endpoints rewritten to it). It sets l.target, and l.sandbox when it
// starts one.
func (c *common) aim(ctx context.Context, l *loaded) error {
	p, b := l.plan, l.build
	if c.sandbox && c.sandboxURL != "" {
		return c.flagErr("--sandbox and --sandbox-url exclude each other")
	}
	if !c.sandbox && c.faults.set() {
		return c.flagErr("the --fault-* flags need --sandbox (with --sandbox-url, give them to provision sandbox)")
	}
	switch {
	case c.sandbox || c.sandboxState:
		l.target = targetOf(p, "sandbox (in-process fakes)")
	case c.sandboxURL != "":
		l.target = targetOf(p, "sandbox at "+strings.TrimRight(c.sandboxURL, "/"))
	default:
		l.target = targetOf(p, "")
	}
	if c.sandboxURL != "" {
		if u, err := url.Parse(c.sandboxURL); err != nil || u.Scheme != "http" || u.Host == "" {
			return c.flagErr("--sandbox-url %q: want http://HOST:PORT", c.sandboxURL)
		}
		ext := sandboxExtensions()
		sandbox.Rewrite(p, c.sandboxURL, ext...)
		b.ServerURL = sandbox.ServerURL(c.sandboxURL, ext...)
		b.TLSOverride = &plan.TLS{}
	}
	if c.sandbox {
		fc, err := c.faults.config()
		if err != nil {
			return withCode(ExitBadInput, err)
		}
		sb, err := startSandbox(ctx, p, b, fc)
		if err != nil {
			return withCode(ExitBadInput, fmt.Errorf("sandbox: %w", err))
		}
		l.sandbox = sb
	}
	return nil
}

// buildTasks builds the tasks of every item of b's plan with its section's kind, and
// checks the plan's output references. It returns every problem.
func buildTasks(reg *providers.Registry, b *providers.Build) ([]*providers.Task, []error) {
	p := b.Plan
	var tasks []*providers.Task
	var errs []error
	for _, it := range p.Items {
		k, ok := reg.Kind(it.Section)
		if !ok {
			errs = append(errs, plan.Where(it.Pos, fmt.Errorf("unknown section %q", it.Section)))
			continue
		}
		ts, err := k.Build(b, it)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		tasks = append(tasks, ts...)
	}
	errs = append(errs, providers.CheckOutputRefs(reg, p)...)
	return tasks, errs
}

// graph orders the tasks of the plan at path into the run's graph, cut to this
// process's part with --shard.
func (c *common) graph(path string, tasks []*providers.Task) (*runner.Graph, error) {
	g, err := runner.NewGraph(tasks)
	if err != nil {
		return nil, withCode(ExitBadInput, fmt.Errorf("plan %s is invalid:\n%s", path, indent(err)))
	}
	if c.shard != "" {
		i, n, err := parseShard(c.shard)
		if err != nil {
			return nil, c.flagErr("%v", err)
		}
		g, err = runner.Shard(g, i, n)
		if err != nil {
			return nil, withCode(ExitBadInput, err)
		}
	}
	return g, nil
}

func (l *loaded) close() {
	if l != nil && l.sandbox != nil {
		l.sandbox.Close()
	}
}

func parseShard(s string) (int, int, error) {
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return 0, 0, fmt.Errorf("--shard %q: want I/N with 0 <= I < N (e.g. 0/4)", s)
	}
	return i, n, nil
}

// statePathFor returns the state file of a plan (and shard). Sandbox runs have
// their own (<plan>.sandbox.db): a rehearsal never shares records with the real run.
func (c *common) statePathFor(p *plan.Plan) string {
	if c.statePath != "" {
		return c.statePath
	}
	name := p.Name
	if c.shard != "" {
		i, n, _ := parseShard(c.shard)
		name = fmt.Sprintf("%s.shard-%d-of-%d", name, i, n)
	}
	if c.sandbox || c.sandboxURL != "" || c.sandboxState {
		name += ".sandbox"
	}
	return filepath.Join(p.Dir, ".provision", name+".db")
}

// openState opens the state file of a loaded plan, mapping every problem to a
// clear bad-input error.
func (c *common) openState(path string, l *loaded, readOnly bool) (*state.Store, error) {
	st, err := state.Open(path, state.Options{PlanName: l.plan.Name, Key: os.Getenv(state.KeyEnv), ReadOnly: readOnly,
		Target: l.target, Retarget: c.retarget && !readOnly})
	if err != nil {
		if readOnly && errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, withCode(ExitBadInput, stateError(path, err))
	}
	return st, nil
}

func stateError(path string, err error) error {
	switch {
	case errors.Is(err, state.ErrLocked):
		return err // the store's message already says what to do
	case errors.Is(err, state.ErrCorrupt):
		return fmt.Errorf("%w\n  the file was left untouched; move it aside to start over (every task then runs again, with lookups) or restore a copy", err)
	case errors.Is(err, state.ErrOtherPlan):
		return fmt.Errorf("%w\n  use --state to choose another file for this plan", err)
	case errors.Is(err, state.ErrOtherTarget):
		return fmt.Errorf("%w\n  nothing was sent. If this run is meant for other systems (a sandbox rehearsal and the real\n  rollout, staging and production), give it its own file with --state (sandbox runs default to\n  .provision/<plan name>.sandbox.db). If these are the same systems under a new address, rerun\n  apply with --retarget to record the new identity", err)
	case errors.Is(err, state.ErrWrongKey):
		return fmt.Errorf("%w\n  set %s to the key used when the file was written", err, state.KeyEnv)
	}
	return err
}

// uniqueErrors joins errors without repeats (the rows of one foreach entry share
// their mistakes), keeping at most max of them.
func uniqueErrors(errs []error, max int) error {
	seen := map[string]bool{}
	var out []error
	extra := 0
	for _, e := range errs {
		for _, line := range strings.Split(e.Error(), "\n") {
			if seen[line] {
				continue
			}
			seen[line] = true
			if len(out) == max {
				extra++
				continue
			}
			out = append(out, errors.New(line))
		}
	}
	if extra > 0 {
		out = append(out, fmt.Errorf("... and %d more problems", extra))
	}
	return errors.Join(out...)
}

func indent(err error) string {
	lines := strings.Split(strings.TrimRight(err.Error(), "\n"), "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n")
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
