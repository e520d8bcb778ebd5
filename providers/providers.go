// Package providers is the contract between the engine and the vendor packages.
//
// A Kind turns plan items of one section into Tasks. A Task's Action does the remote
// work. The runner calls Action.Apply concurrently for different tasks (never twice at
// once for one task), records intent durably before each call and the result after it,
// and calls Apply again after a retryable failure, after a crash (the attempt is then
// "in doubt") or when the spec changed since it was done.
//
// Apply must therefore be re-entrant: read checkpointed outputs (Exec.Prior) and look
// objects up by their natural key before any create that the server does not make
// idempotent. Exec.Checkpoint stores a handle (cloud system id, async task GUID) the
// moment the API returns it, so a resumed run continues instead of creating again.
package providers

import (
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"

	"provision/plan"
	"provision/state"
)

// Kind builds tasks for one plan section. Implementations are safe for concurrent use.
type Kind interface {
	// Section is the plan section this kind reads, e.g. "nx_systems".
	Section() string
	// Doc is a short description of the section and its fields for --help.
	Doc() string
	// Build decodes and validates one item (strictly: unknown fields are errors) and
	// returns its tasks, the first of which has ID == item.Name. Errors carry positions
	// (plan.Where) and are joined with errors.Join so that all are reported at once.
	Build(b *Build, item *plan.Item) ([]*Task, error)
	// Outputs names the outputs the item's first task (ID == item.Name) may record
	// when done: the only keys ${outputs.ITEM.KEY} can use (CheckOutputRefs). It is
	// called for items that Build accepted and must not fail.
	Outputs(item *plan.Item) []string
}

// Task is one node of the graph.
type Task struct {
	ID   string
	Kind string // plan section
	Pos  plan.Pos
	// Deps are the IDs this task waits for (explicit, implicit from references, and any
	// the provider adds, e.g. a share waiting for its system's binding).
	Deps []string
	// Hash of the task's own spec; a change re-applies the task on the next run.
	Hash [32]byte
	// Refs are output references that the runner resolves inside Spec before Apply.
	Refs []plan.Ref
	// Spec is a pointer to the decoded spec; the runner replaces ${outputs.X.K} in its
	// string fields (and plan.Secret fields) just before Apply. May be nil.
	Spec any
	// Endpoint is the name of the endpoint the task mostly talks to (for reports).
	Endpoint string
	Action   Action
}

// Action does one task's remote work.
type Action interface {
	// Apply makes the remote object match the spec and returns the task's outputs.
	// Errors: a *Error (classified), ErrInDoubt, or any other error, which the runner
	// treats as permanent for this run.
	Apply(ctx context.Context, x *Exec) (state.Outputs, error)
}

// Prober is implemented by actions that can tell, read-only, whether their object
// already exists remotely (`provision plan --probe`).
type Prober interface {
	Probe(ctx context.Context, x *Exec) (exists bool, detail string, err error)
}

// Remover is implemented by kinds whose tasks' remote objects can be deleted
// (`provision destroy`, `apply --prune`). Delete removes the object one task made,
// from what its record says: d.Prior (outputs checkpointed when it ran; secret ones
// decrypted when the state key is known) and d.Info.Spec (its resolved spec as JSON,
// secret fields masked). d.Planned is the task as the current plan builds it (its
// Spec has the plan's secrets), or nil when the plan no longer lists it: Delete must
// then do what it can without secrets, and say what it left.
//
// Delete is called with the same intent-before-effect records and retries as Apply,
// so it must be idempotent: an object already gone is success. When d.InDoubt (the
// create's outcome was never recorded) it looks the object up by its natural key
// before deciding there is nothing to delete. An object the API cannot delete is an
// error wrapping ErrCannotDelete that says what is left and why.
type Remover interface {
	Delete(ctx context.Context, b *Build, d *Deletion) error
}

// Deletion is what a Remover gets for one task.
type Deletion struct {
	*Exec // Task is the delete task (ID, Kind, Endpoint); Prior the recorded outputs
	// Info is what the task recorded when it was done (kind, spec, deps, adopted);
	// nil for a task that never finished (failed or in doubt).
	Info *state.TaskInfo
	// Planned is the task as the current plan builds it; nil when it was removed.
	Planned *Task
}

// ErrCannotDelete is wrapped by a Remover's error when the vendor API offers no
// way to delete the object (destroy reports it and keeps the record).
var ErrCannotDelete = errors.New("the API offers no way to delete this object")

// Refresher is implemented by actions that can re-read their done object
// (`plan --refresh`, `apply --refresh`). Drift compares the remote object with the
// spec, read-only, and returns what differs, field by field (none: in sync). A gone
// object is one FieldDiff with Field "" and Got "(missing)". Secret fields are never
// read back; their values never appear in a FieldDiff.
type Refresher interface {
	Drift(ctx context.Context, x *Exec) ([]FieldDiff, error)
}

// FieldDiff is one field that differs between the spec and the remote object.
type FieldDiff struct {
	Field string `json:"field"`
	Want  string `json:"want"`
	Got   string `json:"got"`
}

// ActionFunc adapts a function to Action.
type ActionFunc func(ctx context.Context, x *Exec) (state.Outputs, error)

func (f ActionFunc) Apply(ctx context.Context, x *Exec) (state.Outputs, error) { return f(ctx, x) }

// Exec is what the runner gives an Apply call.
type Exec struct {
	Task *Task
	// Attempt is 1 for the first attempt ever (across runs), 2 for the next, ...
	Attempt int
	// InDoubt is true when an earlier attempt started and its outcome is unknown:
	// the process died, or the request may have been applied before an error.
	// Non-idempotent creates must look the object up first.
	InDoubt bool
	// InDoubtSince is when the attempt in doubt started (zero when not in doubt, or
	// unknown): work a server queued then may still be under way.
	InDoubtSince time.Time
	// Changed is true when the task was done before with a different spec.
	Changed bool
	// Prior holds outputs checkpointed by earlier attempts (secret ones decrypted
	// when the state key is known, absent otherwise).
	Prior state.Outputs
	// Log is the task's logger (already carries the task ID).
	Log zerolog.Logger
	// Checkpoint durably merges outputs into the task's record before Apply returns.
	CheckpointFunc func(state.Outputs) error
	// Redactor learns secret values produced at run time (auth keys).
	Redactor *plan.Redactor
	// Lookup returns another task's output (the runner's resolver); Expand uses it.
	Lookup func(plan.Ref) (string, error)
	// Adopted is set by Apply when it took over an object that existed before this
	// task ever tried to create it (a lookup on the first attempt found it). An
	// object found by an in-doubt lookup is the task's own earlier create, not an
	// adoption. Destroy leaves adopted objects alone unless asked.
	Adopted bool
}

// Expand replaces ${outputs.ITEM.KEY} references in s, for values the runner does
// not reach by itself (strings inside free-form bodies).
func (x *Exec) Expand(s string) (string, error) {
	refs := plan.FindRefs(s)
	if len(refs) == 0 {
		return s, nil
	}
	if x.Lookup == nil {
		return "", fmt.Errorf("output references are not available here: %q", s)
	}
	holder := struct{ S string }{s}
	if err := plan.ResolveRefs(&holder, x.Lookup); err != nil {
		return "", err
	}
	return holder.S, nil
}

// Checkpoint durably records outputs now (e.g. a handle returned by a create), so that
// a crash after this point resumes from them. Secret outputs are added to the redactor.
func (x *Exec) Checkpoint(o state.Outputs) error {
	for _, v := range o {
		if v.Secret {
			x.Redactor.Add(v.Value)
		}
	}
	if x.Prior == nil {
		x.Prior = state.Outputs{}
	}
	for k, v := range o {
		x.Prior[k] = v
	}
	if x.CheckpointFunc == nil {
		return nil
	}
	return x.CheckpointFunc(o)
}

// PriorValue returns a checkpointed output value, or "".
func (x *Exec) PriorValue(key string) string {
	if x == nil || x.Prior == nil {
		return ""
	}
	return x.Prior[key].Value
}

// ErrInDoubt is returned when a task cannot tell whether an earlier attempt took
// effect and cannot find out (no lookup possible). The operator must check by hand.
var ErrInDoubt = errors.New("earlier attempt may have taken effect and no lookup can confirm it")

// Error is a classified remote failure.
type Error struct {
	// Op names the call, e.g. "POST /cdb/systems/bind".
	Op string
	// Status is the HTTP status, 0 when no answer came.
	Status int
	// Code and Message are the API's own error code and text, when it gave them.
	Code    string
	Message string
	// Retryable: the same call may succeed later (5xx, 429, network).
	Retryable bool
	// RetryAfter is the server's requested delay (Retry-After), if any.
	RetryAfter time.Duration
	// Throttled: the server refused the request for its rate (429, or 503 with
	// Retry-After) without processing it. Retryable, and costs no attempt.
	Throttled bool
	// MaybeApplied: the request reached the server and may have taken effect
	// (connection lost after sending, timeout, 5xx on a create).
	MaybeApplied bool
	Err          error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	if e.Status != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.Status)
	}
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// IsRetryable reports whether err may succeed when tried again.
func IsRetryable(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Retryable
}

// IsThrottled reports whether err is a rate refusal (Error.Throttled, or status 429).
func IsThrottled(err error) bool {
	var e *Error
	return errors.As(err, &e) && (e.Throttled || e.Status == 429)
}

// RetryAfter returns the delay the server asked for, or 0.
func RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// MaybeApplied reports whether a failed call may still have taken effect.
func MaybeApplied(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.MaybeApplied
}

// StatusOf returns the HTTP status of a remote error, or 0.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// Build is what a Kind gets while building tasks.
type Build struct {
	Plan *plan.Plan
	// Clients holds what the build's items and tasks share: API clients (one per
	// endpoint or server), sessions, plan indexes and uniqueness claims.
	Clients *Clients
	// ServerURL, when set (sandbox mode), maps the URL of a per-item server (an Nx
	// server) to the local fake that plays it. Endpoint URLs are rewritten before
	// Build, so kinds only call this for URLs that come from item fields.
	ServerURL func(url string) string
	// TLSOverride, when set (sandbox mode), replaces the TLS options of per-item servers.
	TLSOverride *plan.TLS
}

// SpecHash hashes a decoded spec for Task.Hash: section, task ID and the JSON form of
// spec. plan.Secret fields marshal as "***", so the hash never depends on a secret
// value (a changed password does not re-run a task; a changed reference does).
//
// It is not a second plan.Item.Hash: Item.Hash identifies an item as written, and kinds
// whose item is its one task (milestones, http) use it as it is; SpecHash identifies a
// task a kind derives from an item after decoding, where one item yields several tasks
// (an nx system and one share task per user) or the decoded form is what decides
// (defaults applied). Both values are stored in state files: changing either formula
// would make every done task look changed once, and an http step would send its
// request again, so neither is folded into the other.
func SpecHash(section, id string, spec any) [32]byte {
	h := sha256.New()
	h.Write([]byte(section))
	h.Write([]byte{0})
	h.Write([]byte(id))
	h.Write([]byte{0})
	b, err := json.Marshal(spec)
	if err != nil {
		// Specs are plain data; a marshal failure is a programming error.
		panic(fmt.Sprintf("providers: hash spec of %s: %v", id, err))
	}
	h.Write(b)
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// Endpoint looks up an endpoint by name and checks that its kind is one of kinds.
func (b *Build) Endpoint(pos plan.Pos, name string, kinds ...string) (*plan.Endpoint, error) {
	ep, err := b.endpoint(name, kinds...)
	if err != nil {
		if name == "" {
			err = fmt.Errorf("endpoint: %w", err)
		}
		return nil, plan.Where(pos, err)
	}
	return ep, nil
}

// endpoint is Endpoint with errors that name the endpoint but carry no position.
func (b *Build) endpoint(name string, kinds ...string) (*plan.Endpoint, error) {
	if name == "" {
		return nil, fmt.Errorf("required (the name of an endpoint of kind %s)", strings.Join(kinds, " or "))
	}
	ep, ok := b.Plan.Endpoints[name]
	if !ok {
		return nil, fmt.Errorf("endpoint %q: no such endpoint in the plan", name)
	}
	if len(kinds) > 0 && !slices.Contains(kinds, ep.Kind) {
		return nil, fmt.Errorf("endpoint %q is of kind %q, want %s", name, ep.Kind, strings.Join(kinds, " or "))
	}
	return ep, nil
}

// Registry maps plan sections to kinds.
type Registry struct {
	kinds map[string]Kind
	order []string // sections in registration order
}

// NewRegistry returns a registry holding kinds; a duplicate section, or endpoint kind
// declarations that are invalid or disagree (EndpointKinds), panic (programming errors).
func NewRegistry(kinds ...Kind) *Registry {
	r := &Registry{kinds: map[string]Kind{}}
	for _, k := range kinds {
		if _, dup := r.kinds[k.Section()]; dup {
			panic("providers: duplicate section " + k.Section())
		}
		r.kinds[k.Section()] = k
		r.order = append(r.order, k.Section())
	}
	r.checkEndpointKinds()
	return r
}

// Sections lists the sections in sorted order.
func (r *Registry) Sections() []string {
	out := make([]string, 0, len(r.kinds))
	for s := range r.kinds {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Kind returns the kind for a section.
func (r *Registry) Kind(section string) (Kind, bool) {
	k, ok := r.kinds[section]
	return k, ok
}

// Decode decodes item fields strictly into out (a pointer to a struct with yaml tags):
// unknown fields, wrong types and missing required values are errors with positions,
// and secret fields must hold secret references (see plan.DecodeItem).
func Decode(item *plan.Item, out any) error {
	return plan.DecodeItem(item, out)
}

// ItemDeps returns an item's dependencies: explicit ones, the items its output
// references name, and extra ones the kind adds (empty names are ignored).
func ItemDeps(item *plan.Item, extra ...string) []string {
	deps := append([]string(nil), item.DependsOn...)
	for _, r := range item.Refs {
		deps = append(deps, r.Item)
	}
	for _, e := range extra {
		if e != "" {
			deps = append(deps, e)
		}
	}
	return deps
}

// EndpointClient looks up the item's endpoint (checking its kind) and returns the
// client all tasks of that endpoint share, made by mk on first use. Problems come
// back with the position of the item or of the endpoint.
func EndpointClient[C any](b *Build, pos plan.Pos, name, kind string, mk func(*plan.Endpoint) (C, error)) (C, error) {
	var zero C
	ep, err := b.Endpoint(pos, name, kind)
	if err != nil {
		return zero, err
	}
	cache := StateOf(b, "endpoint-clients:"+kind, func() *Cache[C] { return &Cache[C]{} })
	c, err := cache.Get(ep.Name, func() (C, error) { return mk(ep) })
	if err != nil {
		return zero, plan.Where(ep.Pos, fmt.Errorf("endpoint %s: %w", ep.Name, err))
	}
	return c, nil
}

// FieldClient is EndpointClient for the endpoint that the item's field at path
// names, recording problems in p: one with the field (missing, no such endpoint,
// another kind) at the field, one with the endpoint's own settings (mk failed) at
// the endpoint. ok is false when it recorded a problem.
func FieldClient[C any](b *Build, p *Problems, path Path, name, kind string, mk func(*plan.Endpoint) (C, error)) (c C, ok bool) {
	ep, err := b.endpoint(name, kind)
	if err != nil {
		p.AddErr(path, err)
		return c, false
	}
	c, err = EndpointClient(b, ep.Pos, ep.Name, kind, mk)
	if err != nil {
		p.Also(err)
		return c, false
	}
	return c, true
}

// HasRef reports whether s still holds an output reference (resolved at run time),
// so validation of its final value must wait.
func HasRef(s string) bool { return strings.Contains(s, "${outputs.") }

// FieldNode walks an item's fields along path (string keys, int list indexes) and
// returns the node found there, or nil.
func FieldNode(n *yaml.Node, path ...any) *yaml.Node {
	for _, step := range path {
		for n != nil && (n.Kind == yaml.DocumentNode || n.Kind == yaml.AliasNode) {
			if n.Kind == yaml.AliasNode {
				n = n.Alias
			} else if len(n.Content) > 0 {
				n = n.Content[0]
			} else {
				n = nil
			}
		}
		if n == nil {
			return nil
		}
		switch k := step.(type) {
		case string:
			if n.Kind != yaml.MappingNode {
				return nil
			}
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == k {
					next = n.Content[i+1]
				}
			}
			n = next
		case int:
			if n.Kind != yaml.SequenceNode || k < 0 || k >= len(n.Content) {
				return nil
			}
			n = n.Content[k]
		default:
			return nil
		}
	}
	return n
}

// SpecJSON is a task spec as JSON under its plan field names (the yaml tags), with
// secret fields masked ("***") and every string passed through red (a secret in a
// free-form field, such as a header, is masked too): what the state keeps to show
// field-by-field changes and to delete an object the plan no longer lists. Nil for a
// nil spec. It walks the value by reflection (a YAML round trip cost a sixth of a
// run's CPU).
func SpecJSON(spec any, red *plan.Redactor) json.RawMessage {
	if spec == nil {
		return nil
	}
	b, err := json.Marshal(specValue(reflect.ValueOf(spec), red))
	if err != nil {
		return nil
	}
	return b
}

var textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()

// specValue turns v into maps, slices and scalars as yaml.v3 would encode it:
// struct fields under their yaml names (omitempty honoured, "-" skipped, inline
// merged), text marshalers (plan.Secret) as their text, strings redacted.
func specValue(v reflect.Value, red *plan.Redactor) any {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil
		}
		if v.Type().Implements(textMarshaler) {
			break
		}
		v = v.Elem()
	}
	if v.Type().Implements(textMarshaler) && (v.Kind() != reflect.Pointer || !v.IsNil()) {
		t, err := v.Interface().(encoding.TextMarshaler).MarshalText()
		if err != nil {
			return nil
		}
		return red.Redact(string(t))
	}
	switch v.Kind() {
	case reflect.String:
		return red.Redact(v.String())
	case reflect.Struct:
		m := map[string]any{}
		structFields(v, red, m)
		return m
	case reflect.Map:
		if v.IsNil() {
			return nil
		}
		m := make(map[string]any, v.Len())
		it := v.MapRange()
		for it.Next() {
			m[red.Redact(fmt.Sprint(it.Key().Interface()))] = specValue(it.Value(), red)
		}
		return m
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			return nil
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = specValue(v.Index(i), red)
		}
		return out
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return v.Interface()
	}
	return nil
}

func structFields(v reflect.Value, red *plan.Redactor, m map[string]any) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		fv := v.Field(i)
		if strings.Contains(opts, "inline") {
			for fv.Kind() == reflect.Pointer {
				if fv.IsNil() {
					break
				}
				fv = fv.Elem()
			}
			if fv.Kind() == reflect.Struct {
				structFields(fv, red, m)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if strings.Contains(opts, "omitempty") && fv.IsZero() {
			continue
		}
		m[name] = specValue(fv, red)
	}
}
