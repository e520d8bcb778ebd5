package plan

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// Output references at run time. Load leaves ${outputs.ITEM.KEY} in Item.Fields(); a
// scalar that holds one keeps its literal "${" escaped as "$${", so that ResolveRefs,
// which replaces the references, is also the one that unescapes it. Strings without
// an output reference are never touched.

// FindRefs returns the output references (${outputs.ITEM.KEY}) in s, in order. The
// item is everything up to the last dot. "$${" is an escaped, literal "${".
func FindRefs(s string) []Ref {
	if !strings.Contains(s, "${outputs.") {
		return nil
	}
	var refs []Ref
	scanRefs(s, func(lit string) {}, func(r Ref, text string) { refs = append(refs, r) })
	return refs
}

// scanRefs walks s: lit gets literal text (escapes removed), ref gets each output
// reference. Other ${...} are passed to lit as written.
func scanRefs(s string, lit func(string), ref func(r Ref, text string)) {
	for i := 0; i < len(s); {
		j := strings.IndexByte(s[i:], '$')
		if j < 0 {
			lit(s[i:])
			return
		}
		j += i
		lit(s[i:j])
		switch {
		case strings.HasPrefix(s[j:], "$${"):
			lit("${")
			i = j + 3
		case strings.HasPrefix(s[j:], "${"):
			end := matchBrace(s, j+2)
			if end < 0 {
				lit(s[j:])
				return
			}
			body := s[j+2 : end]
			name, ok := strings.CutPrefix(body, "outputs.")
			k := strings.LastIndexByte(name, '.')
			if ok && k > 0 && k < len(name)-1 && !strings.Contains(name, "${") {
				ref(Ref{Item: name[:k], Key: name[k+1:]}, s[j:end+1])
			} else {
				lit(s[j : end+1])
			}
			i = end + 1
		default:
			lit("$")
			i = j + 1
		}
	}
}

// replaceRefs replaces the output references in s; s is returned as is if it has none.
func replaceRefs(s string, lookup func(Ref) (string, error)) (string, bool, error) {
	if !strings.Contains(s, "${outputs.") {
		return s, false, nil
	}
	var b strings.Builder
	var err error
	scanRefs(s, func(l string) { b.WriteString(l) }, func(r Ref, text string) {
		if err != nil {
			return
		}
		v, e := lookup(r)
		if e != nil {
			err = fmt.Errorf("%s: %w", text, e)
			return
		}
		b.WriteString(v)
	})
	if err != nil {
		return "", false, err
	}
	return b.String(), true, nil
}

var secretType = reflect.TypeFor[Secret]()

// maxResolveDepth bounds how deep ResolveRefs goes into nested values.
const maxResolveDepth = 100

// ResolveRefs replaces every ${outputs.ITEM.KEY} in the values reachable from v (a
// non-nil pointer) with lookup's answer: strings, Secrets, and those inside structs
// (exported fields), pointers, slices, arrays, maps and interfaces (a decoded
// free-form body: map[string]any, []any). Unexported fields are skipped; shared
// pointers are visited once. It stops at lookup's first error.
func ResolveRefs(v any, lookup func(r Ref) (string, error)) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("plan: ResolveRefs needs a non-nil pointer, got %T", v)
	}
	r := &refResolver{lookup: lookup, seen: map[uintptr]bool{rv.Pointer(): true}}
	_, err := r.value(rv.Elem(), 0)
	return err
}

type refResolver struct {
	lookup func(Ref) (string, error)
	seen   map[uintptr]bool
}

// value resolves v in place where it is settable; it reports whether it changed.
func (r *refResolver) value(v reflect.Value, depth int) (bool, error) {
	if depth > maxResolveDepth {
		return false, errors.New("resolve output references: value nested too deeply")
	}
	switch v.Kind() {
	case reflect.String:
		s, changed, err := replaceRefs(v.String(), r.lookup)
		if err != nil || !changed {
			return false, err
		}
		if !v.CanSet() {
			return false, nil
		}
		v.SetString(s)
		return true, nil
	case reflect.Pointer:
		if v.IsNil() || r.seen[v.Pointer()] {
			return false, nil
		}
		r.seen[v.Pointer()] = true
		_, err := r.value(v.Elem(), depth+1)
		return false, err
	case reflect.Struct:
		return r.structValue(v, depth)
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && (v.IsNil() || v.Len() == 0) {
			return false, nil
		}
		changed := false
		for i := 0; i < v.Len(); i++ {
			c, err := r.value(v.Index(i), depth+1)
			if err != nil {
				return false, err
			}
			changed = changed || c
		}
		return changed, nil
	case reflect.Map:
		return false, r.mapValue(v, depth)
	case reflect.Interface:
		return r.interfaceValue(v, depth)
	}
	return false, nil
}

// structValue resolves a Secret's text, or else each exported field of the struct v.
func (r *refResolver) structValue(v reflect.Value, depth int) (bool, error) {
	if v.Type() == secretType {
		if !v.CanAddr() {
			return false, nil
		}
		sp := v.Addr().Interface().(*Secret)
		s, changed, err := replaceRefs(sp.v, r.lookup)
		if err != nil || !changed {
			return false, err
		}
		sp.v = s
		return true, nil
	}
	changed := false
	t := v.Type()
	for i := 0; i < v.NumField(); i++ {
		if !t.Field(i).IsExported() {
			continue
		}
		c, err := r.value(v.Field(i), depth+1)
		if err != nil {
			return false, err
		}
		changed = changed || c
	}
	return changed, nil
}

// mapValue resolves each value of the map v on a copy (map values are not
// settable) and stores the copies that changed. A map is visited once.
func (r *refResolver) mapValue(v reflect.Value, depth int) error {
	if v.IsNil() || r.seen[v.Pointer()] {
		return nil
	}
	r.seen[v.Pointer()] = true
	for _, k := range v.MapKeys() {
		e := v.MapIndex(k)
		cp := reflect.New(e.Type()).Elem()
		cp.Set(e)
		c, err := r.value(cp, depth+1)
		if err != nil {
			return err
		}
		if c {
			v.SetMapIndex(k, cp)
		}
	}
	return nil
}

// interfaceValue resolves the dynamic value of the interface v on a copy, and
// stores the copy back when it changed and v is settable.
func (r *refResolver) interfaceValue(v reflect.Value, depth int) (bool, error) {
	if v.IsNil() {
		return false, nil
	}
	e := v.Elem()
	cp := reflect.New(e.Type()).Elem()
	cp.Set(e)
	c, err := r.value(cp, depth+1)
	if err != nil {
		return false, err
	}
	if c && v.CanSet() {
		v.Set(cp)
		return true, nil
	}
	return false, nil
}
