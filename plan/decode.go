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

// durationT decodes "30s"-style durations; plain numbers are refused (ambiguous unit).
type durationT struct{ time.Duration }

// D returns the duration.
func (d durationT) D() time.Duration { return d.Duration }

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *durationT) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a duration like 30s or 2m", n.Line)
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (want e.g. 30s or 2m)", n.Line, n.Value)
	}
	if v < 0 {
		return fmt.Errorf("line %d: duration %q is negative", n.Line, n.Value)
	}
	d.Duration = v
	return nil
}

// MarshalText keeps durations readable in hashes and reports.
func (d durationT) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

var unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()

type fieldSet struct {
	names []string
	types map[string]reflect.Type
}

var fieldCache sync.Map // reflect.Type -> *fieldSet

func fieldsOf(t reflect.Type) *fieldSet {
	if v, ok := fieldCache.Load(t); ok {
		return v.(*fieldSet)
	}
	fs := &fieldSet{types: map[string]reflect.Type{}}
	var add func(t reflect.Type)
	add = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("yaml")
			name, opts, _ := strings.Cut(tag, ",")
			if name == "-" {
				continue
			}
			if strings.Contains(opts, "inline") {
				ft := f.Type
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if ft.Kind() == reflect.Struct {
					add(ft)
				}
				continue
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			fs.names = append(fs.names, name)
			fs.types[name] = f.Type
		}
	}
	add(t)
	sort.Strings(fs.names)
	fieldCache.Store(t, fs)
	return fs
}

// leaf reports whether values of t are decoded as a whole (no key checks inside).
var nodeType = reflect.TypeOf(yaml.Node{})

func leaf(t reflect.Type) bool {
	if t == nodeType {
		return true
	}
	if t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType) {
		return true
	}
	return false
}

// checkKnown walks n against type t and reports unknown mapping keys with positions.
func checkKnown(file string, n *yaml.Node, t reflect.Type, path string, errs *[]error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n == nil || leaf(t) {
		return
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return // node.Decode reports the type error
		}
		fs := fieldsOf(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft, ok := fs.types[k.Value]
			if !ok {
				*errs = append(*errs, Where(NodePos(file, k), fmt.Errorf("%sunknown field %q (known: %s)", prefix(path), k.Value, strings.Join(fs.names, ", "))))
				continue
			}
			checkKnown(file, v, ft, join(path, k.Value), errs)
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, e := range n.Content {
			checkKnown(file, e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), errs)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			checkKnown(file, n.Content[i+1], t.Elem(), join(path, n.Content[i].Value), errs)
		}
	}
}

func prefix(path string) string {
	if path == "" {
		return ""
	}
	return path + ": "
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

var lineRE = regexp.MustCompile(`^line (\d+): (.*)$`)

// DecodeStrict decodes a mapping node into out (a pointer to a struct): unknown keys
// at any depth are errors with their position, and type errors carry the line. All
// problems are returned at once.
func DecodeStrict(file string, n *yaml.Node, out any) error {
	rv := reflect.ValueOf(out)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return errors.New("plan: DecodeStrict needs a non-nil pointer")
	}
	if n == nil {
		return nil
	}
	var errs []error
	checkKnown(file, n, rv.Type(), "", &errs)
	if err := n.Decode(out); err != nil {
		paths := map[int]fieldAt{}
		fieldLines(n, "", paths)
		for _, e := range yamlErrors(file, n, err) {
			var pe *PosError
			if errors.As(e, &pe) {
				if f, ok := paths[pe.Pos.Line]; ok && f.path != "" {
					pos := pe.Pos
					if pos.Col == 0 {
						pos.Col = f.col
					}
					e = Where(pos, fmt.Errorf("%s: %w", f.path, pe.Err))
				}
			}
			errs = append(errs, e)
		}
	}
	return errors.Join(errs...)
}

// fieldLines maps the line of every value to its field path, so that a yaml type
// error ("line 12: cannot unmarshal ...") can name the field.
type fieldAt struct {
	path string
	col  int
}

func fieldLines(n *yaml.Node, path string, out map[int]fieldAt) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := join(path, n.Content[i].Value)
			v := n.Content[i+1]
			if _, ok := out[v.Line]; !ok || v.Kind == yaml.ScalarNode {
				out[v.Line] = fieldAt{p, v.Column}
			}
			fieldLines(v, p, out)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			if _, ok := out[c.Line]; !ok || c.Kind == yaml.ScalarNode {
				out[c.Line] = fieldAt{p, c.Column}
			}
			fieldLines(c, p, out)
		}
	}
}

// yamlErrors turns yaml.v3 errors ("line 5: cannot unmarshal ...") into PosErrors.
func yamlErrors(file string, n *yaml.Node, err error) []error {
	var te *yaml.TypeError
	var msgs []string
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var out []error
	for _, m := range msgs {
		if sm := lineRE.FindStringSubmatch(m); sm != nil {
			line, _ := strconv.Atoi(sm[1])
			out = append(out, Where(Pos{File: file, Line: line}, errors.New(friendlyType(sm[2]))))
			continue
		}
		out = append(out, Where(NodePos(file, n), errors.New(friendlyType(m))))
	}
	return out
}

var typeRE = regexp.MustCompile("cannot unmarshal !!(\\w+) `(.*)` into (.+)$")

// friendlyType rewords yaml.v3 type errors for operators.
func friendlyType(m string) string {
	sm := typeRE.FindStringSubmatch(m)
	if sm == nil {
		return m
	}
	want := sm[3]
	switch {
	case strings.HasPrefix(want, "[]"):
		want = "a list"
	case strings.HasPrefix(want, "map["):
		want = "a mapping"
	case strings.Contains(want, "int"):
		want = "an integer"
	case strings.Contains(want, "float"):
		want = "a number"
	case want == "bool":
		want = "true or false"
	case want == "string":
		want = "a string"
	default:
		want = "a " + want
	}
	got := map[string]string{"str": "string", "int": "integer", "float": "number", "bool": "boolean", "map": "mapping", "seq": "list", "null": "null"}[sm[1]]
	if got == "" {
		got = sm[1]
	}
	return fmt.Sprintf("got %s %q, want %s", got, sm[2], want)
}

// FindRefs returns the output references (${outputs.ITEM.KEY}) in s.
func FindRefs(s string) []Ref {
	var refs []Ref
	for i := 0; ; {
		j := strings.Index(s[i:], "${outputs.")
		if j < 0 {
			return refs
		}
		j += i
		end := strings.IndexByte(s[j:], '}')
		if end < 0 {
			return refs
		}
		body := s[j+len("${outputs.") : j+end]
		if k := strings.LastIndexByte(body, '.'); k > 0 && k < len(body)-1 && (j == 0 || s[j-1] != '$') {
			refs = append(refs, Ref{Item: body[:k], Key: body[k+1:]})
		}
		i = j + end + 1
	}
}

// replaceRefs substitutes every output reference in s.
func replaceRefs(s string, lookup func(Ref) (string, error)) (string, error) {
	if !strings.Contains(s, "${outputs.") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; ; {
		j := strings.Index(s[i:], "${outputs.")
		if j < 0 {
			b.WriteString(s[i:])
			return b.String(), nil
		}
		j += i
		end := strings.IndexByte(s[j:], '}')
		if end < 0 {
			b.WriteString(s[i:])
			return b.String(), nil
		}
		body := s[j+len("${outputs.") : j+end]
		k := strings.LastIndexByte(body, '.')
		b.WriteString(s[i:j])
		if k <= 0 || k == len(body)-1 || (j > 0 && s[j-1] == '$') {
			b.WriteString(s[j : j+end+1])
		} else {
			v, err := lookup(Ref{Item: body[:k], Key: body[k+1:]})
			if err != nil {
				return "", err
			}
			b.WriteString(v)
		}
		i = j + end + 1
	}
}

var secretType = reflect.TypeOf(Secret{})

// ResolveRefs replaces ${outputs.ITEM.KEY} in every string reachable from v (a
// pointer): struct fields, Secrets, slices, maps and interface values holding
// strings, maps or slices. Unexported fields are skipped.
func ResolveRefs(v any, lookup func(Ref) (string, error)) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return errors.New("plan: ResolveRefs needs a non-nil pointer")
	}
	return resolveValue(rv.Elem(), lookup, 0)
}

func resolveValue(v reflect.Value, lookup func(Ref) (string, error), depth int) error {
	if depth > 64 {
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		s, err := replaceRefs(v.String(), lookup)
		if err != nil {
			return err
		}
		if v.CanSet() {
			v.SetString(s)
		}
	case reflect.Pointer:
		if !v.IsNil() {
			return resolveValue(v.Elem(), lookup, depth+1)
		}
	case reflect.Struct:
		if v.Type() == secretType {
			if !v.CanAddr() {
				return nil
			}
			sp := v.Addr().Interface().(*Secret)
			s, err := replaceRefs(sp.v, lookup)
			if err != nil {
				return err
			}
			sp.v = s
			return nil
		}
		for i := 0; i < v.NumField(); i++ {
			if !v.Type().Field(i).IsExported() {
				continue
			}
			if err := resolveValue(v.Field(i), lookup, depth+1); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			if err := resolveValue(v.Index(i), lookup, depth+1); err != nil {
				return err
			}
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			e := v.MapIndex(k)
			cp := reflect.New(e.Type()).Elem()
			cp.Set(e)
			if err := resolveValue(cp, lookup, depth+1); err != nil {
				return err
			}
			v.SetMapIndex(k, cp)
		}
	case reflect.Interface:
		if v.IsNil() {
			return nil
		}
		e := v.Elem()
		cp := reflect.New(e.Type()).Elem()
		cp.Set(e)
		if err := resolveValue(cp, lookup, depth+1); err != nil {
			return err
		}
		if v.CanSet() {
			v.Set(cp)
		}
	}
	return nil
}
