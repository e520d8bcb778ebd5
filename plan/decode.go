package plan

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"
)

// UnmarshalYAML accepts "30s"-style durations. A plain number is refused (its unit
// would be a guess), except 0; so is a negative duration.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return typeError(n, "want a duration such as 30s or 2m")
	}
	if t := n.ShortTag(); (t == "!!int" || t == "!!float") && n.Value != "0" {
		return typeError(n, fmt.Sprintf("%s has no unit: want a duration such as 30s or 2m", n.Value))
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return typeError(n, fmt.Sprintf("%q is not a duration: want e.g. 30s or 2m", n.Value))
	}
	if v < 0 {
		return typeError(n, fmt.Sprintf("%q is negative", n.Value))
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration as "30s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// typeError is the error an UnmarshalYAML returns so that decoding goes on with the
// other fields.
func typeError(n *yaml.Node, msg string) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %s", n.Line, msg)}}
}

var (
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	nodeType        = reflect.TypeFor[yaml.Node]()
	durationType    = reflect.TypeFor[time.Duration]()
)

// fieldSet is what a struct type accepts as mapping keys.
type fieldSet struct {
	types  map[string]reflect.Type
	known  string       // sorted names, for messages
	inline reflect.Type // value type of an inline map (accepts any key), or nil
	// flat maps the keys of a flat struct type to field indexes (decodeFlat); nil
	// for any other type.
	flat flatFields
}

// fieldKey is the mapping key of struct field f, as yaml.v3 names it (the tag's
// name, else the lower-cased field name; "-" for none), and the tag's options.
func fieldKey(f reflect.StructField) (name, opts string) {
	name, opts, _ = strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "" {
		name = strings.ToLower(f.Name)
	}
	return name, opts
}

var fieldCache sync.Map // reflect.Type -> *fieldSet

func fieldsOf(t reflect.Type) *fieldSet {
	if v, ok := fieldCache.Load(t); ok {
		return v.(*fieldSet)
	}
	fs := &fieldSet{types: map[string]reflect.Type{}}
	var names []string
	var add func(t reflect.Type, depth int)
	add = func(t reflect.Type, depth int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, opts := fieldKey(f)
			if name == "-" {
				continue
			}
			if inlineOpt(opts) {
				ft := f.Type
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				switch {
				case ft.Kind() == reflect.Struct && depth < 16:
					add(ft, depth+1)
				case ft.Kind() == reflect.Map:
					fs.inline = ft.Elem()
				}
				continue
			}
			if !f.IsExported() {
				continue
			}
			if _, dup := fs.types[name]; !dup {
				names = append(names, name)
			}
			fs.types[name] = f.Type
		}
	}
	add(t, 0)
	sort.Strings(names)
	fs.known = strings.Join(names, ", ")
	fs.flat = flatIndex(t)
	v, _ := fieldCache.LoadOrStore(t, fs)
	return v.(*fieldSet)
}

func inlineOpt(opts string) bool {
	for opts != "" {
		var o string
		o, opts, _ = strings.Cut(opts, ",")
		if o == "inline" {
			return true
		}
	}
	return false
}

// leaf reports whether values of t decode as a whole: no keys to check inside.
func leaf(t reflect.Type) bool {
	return t == nodeType || t.Kind() == reflect.Interface ||
		t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType)
}

// fpath is a field path built only when an error needs it.
type fpath struct {
	parent *fpath
	key    string
	idx    int // >= 0: list index
}

func (p *fpath) String() string {
	if p == nil {
		return ""
	}
	var parts []*fpath
	for q := p; q != nil; q = q.parent {
		parts = append(parts, q)
	}
	var b strings.Builder
	for i := len(parts) - 1; i >= 0; i-- {
		q := parts[i]
		if q.idx >= 0 {
			b.WriteString("[" + strconv.Itoa(q.idx) + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(q.key)
	}
	return b.String()
}

// walkBudget bounds the nodes a DecodeStrict walk visits (aliases can make a small
// document stand for a huge tree) and its depth.
const (
	walkBudget = 4_000_000
	walkDepth  = 1000
)

type strictWalker struct {
	file   string
	pol    *secretPolicy // nil: secret fields are not checked
	errs   []error
	budget int
	over   bool
}

func (w *strictWalker) fail(n *yaml.Node, p *fpath, err error) {
	w.errs = append(w.errs, &PosError{Pos: NodePos(w.file, n), Err: &fieldError{path: p.String(), err: err}})
}

func (w *strictWalker) spend(n *yaml.Node, depth int) bool {
	w.budget--
	if w.budget < 0 || depth > walkDepth {
		if !w.over {
			w.over = true
			w.fail(n, nil, errors.New("the document is nested or aliased too deeply"))
		}
		return false
	}
	return true
}

// DecodeStrict decodes a mapping node into out, a pointer to a struct with yaml tags.
// Every mapping key, at any depth (nested structs, pointers, slices and maps of
// structs, inline structs), must name a field: an unknown key is an error with its
// position, naming the known ones. Type errors carry the position of the offending
// node and its field path. Types that implement yaml.Unmarshaler (Secret, Duration) are
// decoded as a whole. All problems are returned at once, joined, each a *PosError; a
// scalar tagged SecretTag is never quoted.
func DecodeStrict(file string, n *yaml.Node, out any) error {
	return decodeStrict(file, n, out, nil)
}

// DecodeItem is DecodeStrict on an item's fields that also checks where the value
// of every Secret field comes from: a secret reference (${env.X}, ${file.P}) or an
// output reference is accepted; a value from a foreach row (a CSV column) must have
// MinSecretLen characters and is registered with the plan's redactor; a literal
// (or a plan var) is refused with the remedy, except PublicDefaultPassword; a
// --var value is refused (the command line is visible to every local user).
// Items not made by Load are decoded without these checks.
func DecodeItem(item *Item, out any) error {
	return decodeStrict(item.Pos.File, item.Fields(), out, item.pol)
}

func decodeStrict(file string, n *yaml.Node, out any, pol *secretPolicy) error {
	rv := reflect.ValueOf(out)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("plan: DecodeStrict needs a non-nil pointer, got %T", out)
	}
	if n == nil {
		return nil
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		n = n.Content[0]
	}
	if decodeFlat(n, rv.Elem()) {
		return nil // what it takes, check passes (TestDecodeFlat_SameAsYAML)
	}
	w := &strictWalker{file: file, budget: walkBudget, pol: pol}
	t := rv.Type().Elem()
	w.check(n, t, nil, 0)
	if w.over {
		return errors.Join(w.errs...)
	}
	err := decodeNode(n, out)
	if err == nil {
		return errors.Join(w.errs...)
	}
	before := len(w.errs)
	w.budget = walkBudget
	w.locate(n, t, nil, 0)
	if len(w.errs) == before {
		// Could not pin it on a node: keep yaml's own words, at the top node.
		for _, m := range yamlMessages(err) {
			if strings.Contains(m, "already defined at line") {
				continue // reported by check
			}
			if hasSecret(n) {
				m = backquoted.ReplaceAllString(m, "(value not shown)")
			}
			w.fail(n, nil, errors.New(m))
		}
	}
	return errors.Join(w.errs...)
}

// decodeNode is n.Decode that turns a panic inside yaml or an UnmarshalYAML method
// into an error.
func decodeNode(n *yaml.Node, out any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cannot decode: %v", r)
		}
	}()
	return n.Decode(out)
}

var (
	lineRE     = regexp.MustCompile(`^line \d+: `)
	backquoted = regexp.MustCompile("`[^`]*`")
)

// yamlMessages lists the messages of a yaml error without "yaml: " and "line N: ".
func yamlMessages(err error) []string {
	var te *yaml.TypeError
	var msgs []string
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		m = strings.TrimPrefix(m, "yaml: ")
		m = lineRE.ReplaceAllString(m, "")
		out = append(out, m)
	}
	return out
}

// check reports unknown and duplicate keys.
func (w *strictWalker) check(n *yaml.Node, t reflect.Type, p *fpath, depth int) {
	if !w.spend(n, depth) {
		return
	}
	for n.Kind == yaml.AliasNode {
		if n.Alias == nil || !w.spend(n, depth) {
			return
		}
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.ScalarNode {
		w.checkLeadingZero(n, p, numericTarget(t) || idField(p))
	}
	if t == secretType && w.pol != nil {
		w.secretField(n, p)
		return
	}
	if leaf(t) {
		if t == nodeType || t.Kind() == reflect.Interface && !t.Implements(unmarshalerType) {
			w.checkFree(n, p, depth) // free-form values (bodies) are sent as decoded
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return // locate reports the type error
		}
		fs := fieldsOf(t)
		w.pairs(n, p, depth, true, func(k, v *yaml.Node) {
			if ft, ok := fs.types[k.Value]; ok {
				w.check(v, ft, &fpath{parent: p, key: k.Value, idx: -1}, depth+1)
				return
			}
			if fs.inline != nil {
				w.check(v, fs.inline, &fpath{parent: p, key: k.Value, idx: -1}, depth+1)
				return
			}
			w.fail(k, p, fmt.Errorf("unknown field %q (known: %s)", k.Value, fs.known))
		})
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, e := range n.Content {
			w.check(e, t.Elem(), &fpath{parent: p, idx: i}, depth+1)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		w.pairs(n, p, depth, true, func(k, v *yaml.Node) {
			w.check(v, t.Elem(), &fpath{parent: p, key: k.Value, idx: -1}, depth+1)
		})
	}
}

// leadingZeroRE matches what YAML reads as a number although it starts with a zero:
// 052 is octal 42, 089 the float 89, under the YAML 1.1 rules yaml.v3 applies.
var leadingZeroRE = regexp.MustCompile(`^[-+]?0[0-9_]+$`)

// checkLeadingZero refuses, when refuse is set, a plain scalar that YAML reads as a
// number but that is written with a leading zero: an id such as account_id: 052
// would otherwise reach the API as 42.
func (w *strictWalker) checkLeadingZero(n *yaml.Node, p *fpath, refuse bool) {
	if !refuse || n.Style&(yaml.TaggedStyle|yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0 || n.Tag == SecretTag {
		return
	}
	if t := n.ShortTag(); t != "!!int" && t != "!!float" || !leadingZeroRE.MatchString(n.Value) {
		return
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return
	}
	w.fail(n, p, fmt.Errorf("%s has a leading zero and would be read as the number %v: write it without the zero if it is a number, or quote it (\"%s\") if the digits are an identifier (a value from a reference: !!str ${...})", n.Value, v, n.Value))
}

// checkFree applies checkLeadingZero to every scalar of a free-form value.
func (w *strictWalker) checkFree(n *yaml.Node, p *fpath, depth int) {
	if !w.spend(n, depth) {
		return
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if p == nil || p.idx >= 0 || p.key != "" {
			w.checkLeadingZero(n, p, true)
		}
	case yaml.SequenceNode:
		for i, e := range n.Content {
			w.checkFree(e, &fpath{parent: p, idx: i}, depth+1)
		}
	case yaml.MappingNode:
		w.pairs(n, p, depth, false, func(k, v *yaml.Node) {
			w.checkFree(v, &fpath{parent: p, key: k.Value, idx: -1}, depth+1)
		})
	}
}

// numericTarget reports Go types a YAML number decodes into as a number.
func numericTarget(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return t != durationType
	}
	return false
}

// idField reports whether the field at p (or the list it is in) names an id:
// id, account_id, accountId, AWSAccountID, tenant-id.
func idField(p *fpath) bool {
	for p != nil && p.idx >= 0 {
		p = p.parent
	}
	if p == nil {
		return false
	}
	k := p.key
	switch {
	case strings.EqualFold(k, "id"):
		return true
	case strings.HasSuffix(k, "Id"), strings.HasSuffix(k, "ID"):
		return true
	}
	lk := strings.ToLower(k)
	return strings.HasSuffix(lk, "_id") || strings.HasSuffix(lk, "-id") || strings.HasSuffix(lk, "_ids") || strings.HasSuffix(k, "Ids") || strings.HasSuffix(k, "IDs")
}

// pairs calls f for every key and value of mapping n, following merge keys
// ("<<: *base"), and (if dups) reports duplicate keys.
func (w *strictWalker) pairs(n *yaml.Node, p *fpath, depth int, dups bool, f func(k, v *yaml.Node)) {
	var seen map[string]*yaml.Node
	if dups && len(n.Content) > 2 {
		seen = make(map[string]*yaml.Node, len(n.Content)/2)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			w.merged(v, p, depth, f)
			continue
		}
		if seen != nil {
			if prev, dup := seen[k.Value]; dup {
				w.fail(k, p, fmt.Errorf("duplicate field %q (first at line %d)", k.Value, prev.Line))
				continue
			}
			seen[k.Value] = k
		}
		f(k, v)
	}
}

func (w *strictWalker) merged(v *yaml.Node, p *fpath, depth int, f func(k, v *yaml.Node)) {
	if !w.spend(v, depth) {
		return
	}
	for v.Kind == yaml.AliasNode && v.Alias != nil {
		v = v.Alias
	}
	switch v.Kind {
	case yaml.MappingNode:
		w.pairs(v, p, depth+1, false, f)
	case yaml.SequenceNode:
		for _, m := range v.Content {
			w.merged(m, p, depth+1, f)
		}
	}
}

// locate finds the nodes behind a failed decode and reports each with its position.
func (w *strictWalker) locate(n *yaml.Node, t reflect.Type, p *fpath, depth int) {
	if !w.spend(n, depth) {
		return
	}
	for n.Kind == yaml.AliasNode {
		if n.Alias == nil || !w.spend(n, depth) {
			return
		}
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == nullTag {
		return // null decodes into any type as its zero value
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() == reflect.Interface && !t.Implements(unmarshalerType) {
		return
	}
	if leaf(t) || t == durationType {
		w.decodeLeaf(n, t, p)
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			w.fail(n, p, fmt.Errorf("got %s, want a mapping", got(n)))
			return
		}
		fs := fieldsOf(t)
		w.pairs(n, p, depth, false, func(k, v *yaml.Node) {
			ft, ok := fs.types[k.Value]
			if !ok {
				ft = fs.inline
			}
			if ft != nil {
				w.locate(v, ft, &fpath{parent: p, key: k.Value, idx: -1}, depth+1)
			}
		})
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 && n.Kind == yaml.ScalarNode {
			w.decodeLeaf(n, t, p)
			return
		}
		if n.Kind != yaml.SequenceNode {
			w.fail(n, p, fmt.Errorf("got %s, want a list", got(n)))
			return
		}
		if t.Kind() == reflect.Array && len(n.Content) != t.Len() {
			w.fail(n, p, fmt.Errorf("got %d values, want %d", len(n.Content), t.Len()))
		}
		for i, e := range n.Content {
			w.locate(e, t.Elem(), &fpath{parent: p, idx: i}, depth+1)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			w.fail(n, p, fmt.Errorf("got %s, want a mapping", got(n)))
			return
		}
		w.pairs(n, p, depth, false, func(k, v *yaml.Node) {
			if t.Key().Kind() != reflect.String {
				w.locate(k, t.Key(), &fpath{parent: p, key: k.Value, idx: -1}, depth+1)
			}
			w.locate(v, t.Elem(), &fpath{parent: p, key: k.Value, idx: -1}, depth+1)
		})
	default:
		w.decodeLeaf(n, t, p)
	}
}

// decodeLeaf decodes n alone into a new value of type t and reports its error.
func (w *strictWalker) decodeLeaf(n *yaml.Node, t reflect.Type, p *fpath) {
	v := reflect.New(t)
	err := decodeNode(n, v.Interface())
	if err == nil {
		return
	}
	secret := hasSecret(n)
	for _, m := range yamlMessages(err) {
		w.fail(n, p, errors.New(friendly(m, n, t, secret)))
	}
}

var typeMsgRE = regexp.MustCompile("^cannot unmarshal !*[\\w:/.-]* (?:`.*` )?into ")

// friendly rewords a yaml type error: "got string "eighty", want an integer".
func friendly(m string, n *yaml.Node, t reflect.Type, secret bool) string {
	if !typeMsgRE.MatchString(m) && !strings.HasPrefix(m, "cannot decode ") {
		if secret {
			return "invalid value (from a secret, not shown)"
		}
		return m
	}
	w := want(t)
	g := got(n)
	if !secret && n.Kind == yaml.ScalarNode && letterOf(n) == 'i' && strings.Contains(w, "integer") {
		return fmt.Sprintf("%s is out of range (want %s)", n.Value, w)
	}
	return fmt.Sprintf("got %s, want %s", g, w)
}

// want describes what a type accepts.
func want(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration such as 30s"
	case t.Kind() == reflect.String:
		return "a string"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		return "an integer"
	case t.Kind() >= reflect.Int8 && t.Kind() <= reflect.Int32:
		return "an integer that fits in " + t.Kind().String()
	case t.Kind() == reflect.Uint || t.Kind() == reflect.Uint64 || t.Kind() == reflect.Uintptr:
		return "a non-negative integer"
	case t.Kind() >= reflect.Uint8 && t.Kind() <= reflect.Uint32:
		return "a non-negative integer that fits in " + t.Kind().String()
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "a number"
	case t.Kind() == reflect.Slice || t.Kind() == reflect.Array:
		return "a list"
	case t.Kind() == reflect.Map || t.Kind() == reflect.Struct:
		return "a mapping"
	}
	return "a " + t.String()
}

// got describes a node; secret scalars are not quoted.
func got(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
	default:
		return "a value"
	}
	if n.Tag == SecretTag {
		return "a secret value (not shown)"
	}
	v := strconv.Quote(clip(n.Value))
	switch letterOf(n) {
	case 's':
		return "string " + v
	case 'i':
		return "integer " + clip(n.Value)
	case 'f':
		return "number " + clip(n.Value)
	case 'b':
		return "boolean " + n.Value
	case 'n':
		return "null"
	}
	return n.ShortTag() + " " + v
}

// hasSecret reports whether a tree holds a secret scalar. A tree too large to look
// through is assumed to hold one.
func hasSecret(n *yaml.Node) bool {
	budget := 100_000
	var walk func(n *yaml.Node, depth int) bool
	walk = func(n *yaml.Node, depth int) bool {
		budget--
		if budget < 0 || depth > walkDepth {
			return true
		}
		if n == nil {
			return false
		}
		if n.Tag == SecretTag {
			return true
		}
		if n.Kind == yaml.AliasNode {
			return walk(n.Alias, depth+1)
		}
		for _, c := range n.Content {
			if walk(c, depth+1) {
				return true
			}
		}
		return false
	}
	return walk(n, 0)
}

// flatFields maps the keys of a flat struct type (at most 64 exported string fields
// only, no methods, no inline or embedded fields) to field indexes.
type flatFields map[string]int

// flatOf is t's flatFields; nil when t is not a flat struct type.
func flatOf(t reflect.Type) flatFields {
	if t.Kind() != reflect.Struct {
		return nil
	}
	return fieldsOf(t).flat
}

// flatIndex builds the flatFields of struct type t (for fieldsOf, which caches it).
func flatIndex(t reflect.Type) flatFields {
	if reflect.PointerTo(t).NumMethod() != 0 || t.NumField() > 64 {
		return nil
	}
	ff := flatFields{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, opts := fieldKey(f)
		if !f.IsExported() || f.Anonymous || f.Type.Kind() != reflect.String ||
			reflect.PointerTo(f.Type).NumMethod() != 0 || name == "-" || (opts != "" && opts != "omitempty") {
			return nil
		}
		if _, dup := ff[name]; dup {
			return nil
		}
		ff[name] = i
	}
	return ff
}

// decodeFlat is the decode of a mapping whose keys and values are all plain strings
// into a flat struct, without yaml's reflection-driven decoder: each field gets its
// scalar's text, as yaml.v3 sets a string from a !!str scalar. What it takes, the
// strict check has nothing to say about: every key names a field, once, no merge
// keys, no secrets, and a !!str or quoted value is never refused for a leading zero.
// It reports false, having set nothing, for anything else (aliases, merge keys, tags
// other than !!str, nested nodes, unresolved plain scalars, unknown or repeated
// keys), which the check and the full decode handle.
func decodeFlat(n *yaml.Node, out reflect.Value) bool {
	if n.Kind != yaml.MappingNode || (n.Tag != "" && n.Tag != "!!map") || len(n.Content)%2 != 0 {
		return false
	}
	ff := flatOf(out.Type())
	if ff == nil {
		return false
	}
	var seen uint64
	for i := 0; i < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !plainString(k) || !plainString(v) {
			return false
		}
		f, ok := ff[k.Value]
		if !ok || seen&(1<<f) != 0 {
			return false
		}
		seen |= 1 << f
	}
	for i := 0; i < len(n.Content); i += 2 {
		out.Field(ff[n.Content[i].Value]).SetString(n.Content[i+1].Value)
	}
	return true
}

// plainString reports whether n is a scalar that yaml.v3 decodes as a string
// without resolving it: tagged !!str, or untagged and quoted or block.
func plainString(n *yaml.Node) bool {
	if n.Kind != yaml.ScalarNode {
		return false
	}
	switch n.Tag {
	case "!!str", "tag:yaml.org,2002:str":
		return true
	case "", "!":
		return n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0
	}
	return false
}
