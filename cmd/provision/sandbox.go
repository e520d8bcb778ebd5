package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"provision/plan"
	"provision/providers"
	"provision/providers/fault"
	"provision/providers/sandbox"
)

// faultFlags are the sandbox's fault switches.
type faultFlags struct {
	latency                      time.Duration
	errRate, tooMany, drop, lost float64
	retryAfter                   time.Duration
	seed                         uint64
	rateLimit                    float64
	rateBurst                    int
}

func (f *faultFlags) register(fs *flag.FlagSet) {
	fs.DurationVar(&f.latency, "fault-latency", 0, "sandbox: `DURATION` of latency added to every request")
	fs.Float64Var(&f.errRate, "fault-5xx", 0, "sandbox: share of requests answered 500 (not applied)")
	fs.Float64Var(&f.tooMany, "fault-429", 0, "sandbox: share of requests answered 429 with Retry-After")
	fs.DurationVar(&f.retryAfter, "fault-retry-after", time.Second, "sandbox: Retry-After `DURATION` sent with 429")
	fs.Float64Var(&f.drop, "fault-drop", 0, "sandbox: share of connections dropped before the request is applied")
	fs.Float64Var(&f.lost, "fault-lost", 0, "sandbox: share of requests applied whose answer is lost (connection dropped)")
	fs.Uint64Var(&f.seed, "fault-seed", 0, "sandbox: random seed `N` for faults (0: random)")
	fs.Float64Var(&f.rateLimit, "fault-rate-limit", 0, "sandbox: requests per second (`RATE`) each fake accepts (a token bucket; over it 429 with Retry-After in the vendor's shape; 0: no limit)")
	fs.IntVar(&f.rateBurst, "fault-rate-burst", 0, "sandbox: bucket size `N` of --fault-rate-limit (default: the rate, at least 1)")
}

// set reports whether any fault switch differs from its default.
func (f *faultFlags) set() bool {
	return f.latency != 0 || f.errRate != 0 || f.tooMany != 0 || f.drop != 0 || f.lost != 0 || f.seed != 0 || (f.retryAfter != 0 && f.retryAfter != time.Second) ||
		f.rateLimit != 0 || f.rateBurst != 0
}

func (f *faultFlags) config() (fault.Config, error) {
	for _, r := range []float64{f.errRate, f.tooMany, f.drop, f.lost} {
		if r < 0 || r > 1 {
			return fault.Config{}, fmt.Errorf("fault rates must be between 0 and 1, got %v", r)
		}
	}
	if f.rateLimit < 0 {
		return fault.Config{}, fmt.Errorf("--fault-rate-limit: want requests per second >= 0, got %v", f.rateLimit)
	}
	if f.rateBurst < 0 {
		return fault.Config{}, fmt.Errorf("--fault-rate-burst: want a bucket size >= 0, got %d", f.rateBurst)
	}
	return fault.Config{Latency: f.latency, ErrorRate: f.errRate, TooManyRate: f.tooMany, RetryAfter: f.retryAfter, DropRate: f.drop, LostRate: f.lost, Seed: f.seed,
		RateLimit: f.rateLimit, RateBurst: f.rateBurst}, nil
}

// sandboxSecrets supplies placeholder values for secret environment variables that
// are unset (or empty) in sandbox mode: the fakes accept whatever credentials the
// plan has, so a rehearsal runs in a fresh shell or CI. The placeholder of a name
// is the same in every process (provision sandbox and apply --sandbox-url agree).
type sandboxSecrets struct {
	missing []string
}

func (s *sandboxSecrets) getenv(name string) (string, bool) {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v, true
	}
	s.missing = append(s.missing, name)
	return plan.PlaceholderSecret("env", name), true
}

// tell says once, on stderr, which variables got placeholders.
func (s *sandboxSecrets) tell(stderr io.Writer) {
	if s == nil || len(s.missing) == 0 {
		return
	}
	names := slices.Compact(slices.Sorted(slices.Values(s.missing)))
	fmt.Fprintf(stderr, "sandbox: %s not set: using placeholder values (the sandbox accepts any credentials)\n",
		plural(len(names), "secret environment variable")+" ("+strings.Join(names, ", ")+")")
}

// sandboxRun is a sandbox started for one command.
type sandboxRun struct {
	sb *sandbox.Sandbox
}

func startSandbox(_ context.Context, p *plan.Plan, b *providers.Build, faults fault.Config) (*sandboxRun, error) {
	sb, err := sandbox.Start("127.0.0.1:0", sandbox.Options{Faults: faults}, sandboxExtensions()...)
	if err != nil {
		return nil, err
	}
	if err := sb.Attach(p); err != nil {
		sb.Close()
		return nil, err
	}
	b.ServerURL = sb.ServerURL()
	b.TLSOverride = &plan.TLS{}
	return &sandboxRun{sb: sb}, nil
}

func (s *sandboxRun) Close() { s.sb.Close() }

// Describe lists the fakes' URLs.
func (s *sandboxRun) Describe() string { return strings.Join(s.sb.Endpoints(), "; ") }

// Summary is a one-line account of requests and injected faults.
func (s *sandboxRun) Summary() string { return s.sb.Counts().String() }

// Stats is the JSON form of Summary.
func (s *sandboxRun) Stats() *sandboxJSON {
	c := s.sb.Counts()
	return &sandboxJSON{Requests: c.Requests, Faults5xx: c.Errors, Faults429: c.TooMany, FaultsDropped: c.Dropped, FaultsLost: c.Lost, Throttled: c.Throttled}
}

func cmdSandbox(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var ff faultFlags
	var addr string
	var c common
	fs := newFlagSet("sandbox", `sandbox [flags] PLAN

Serves fake vendor APIs on localhost for the endpoints of PLAN, configured to accept
the plan's credentials, and prints the URLs to use (as --var values or in a copy of
the plan). Runs until interrupted. "provision apply --sandbox PLAN" does the same
in-process.`)
	fs.StringVar(&addr, "listen", "127.0.0.1:8700", "`ADDR` to serve on (HOST:PORT)")
	fs.Var(&c.vars, "var", "set a plan var: `NAME=VALUE` (repeatable)")
	ff.register(fs)
	pos, err := parse(fs, args, stderr, "plan")
	if err != nil {
		return err
	}
	fc, err := ff.config()
	if err != nil {
		return withCode(ExitBadInput, err)
	}
	reg := registry()
	sp := &sandboxSecrets{}
	o := reg.LoadOptions()
	o.Vars, o.Getenv = c.vars, sp.getenv
	p, err := plan.Load(pos[0], o)
	if err != nil {
		return withCode(ExitBadInput, fmt.Errorf("plan %s is invalid:\n%s", pos[0], indent(err)))
	}
	sp.tell(stderr)
	sb, err := sandbox.Start(addr, sandbox.Options{Faults: fc}, sandboxExtensions()...)
	if err != nil {
		return withCode(ExitBadInput, err)
	}
	defer sb.Close()
	if err := sb.Attach(p); err != nil {
		return withCode(ExitBadInput, err)
	}
	fmt.Fprintf(stdout, "sandbox serving on %s (faults: %s)\n", sb.URL(), describeFaults(fc))
	for _, l := range sb.Endpoints() {
		fmt.Fprintln(stdout, "  "+l)
	}
	fmt.Fprintln(stdout, "press Ctrl-C to stop")
	<-ctx.Done()
	fmt.Fprintf(stdout, "sandbox stopped: %s\n", sb.Counts())
	return nil
}

func describeFaults(c fault.Config) string {
	if c.Off() {
		return "off"
	}
	d := fmt.Sprintf("latency=%s 5xx=%.3f 429=%.3f drop=%.3f lost=%.3f", c.Latency, c.ErrorRate, c.TooManyRate, c.DropRate, c.LostRate)
	if c.RateLimit > 0 {
		d += fmt.Sprintf(" rate-limit=%g/s", c.RateLimit)
	}
	return d
}
