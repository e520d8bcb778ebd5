package plan

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// authIndex maps each common auth key (Auth's yaml tags) to its field index.
var authIndex = func() map[string]int {
	t := reflect.TypeFor[Auth]()
	m := map[string]int{}
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name != "-" {
			m[name] = i
		}
	}
	return m
}()

// authKeyRE is what an auth key may look like (it becomes a yaml tag).
var authKeyRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// Check reports what is wrong with a declaration: a kind name that is not 1-64 of
// A-Z a-z 0-9 _ -, an auth key that is empty, repeated or not lower-case letters,
// digits and '_', a common key declared with another type than Auth gives it, or an
// identity label on a secret.
func (k EndpointKind) Check() error {
	var errs []error
	if !isIdent(k.Name) {
		errs = append(errs, fmt.Errorf("endpoint kind %q: want 1-64 letters, digits, '_' or '-'", k.Name))
	}
	seen := map[string]bool{}
	for _, f := range k.Auth {
		switch {
		case !authKeyRE.MatchString(f.Name):
			errs = append(errs, fmt.Errorf("endpoint kind %s: auth key %q: want lower-case letters, digits and '_'", k.Name, f.Name))
		case seen[f.Name]:
			errs = append(errs, fmt.Errorf("endpoint kind %s: auth key %q declared twice", k.Name, f.Name))
		}
		seen[f.Name] = true
		if i, ok := authIndex[f.Name]; ok && (reflect.TypeFor[Auth]().Field(i).Type == secretType) != f.Secret {
			errs = append(errs, fmt.Errorf("endpoint kind %s: auth key %q is a common key: its Secret must be %v", k.Name, f.Name, !f.Secret))
		}
		if f.Secret && f.Identity != "" {
			errs = append(errs, fmt.Errorf("endpoint kind %s: auth key %q is a secret and cannot be part of the identity", k.Name, f.Name))
		}
	}
	return errors.Join(errs...)
}

// endpointShape is the strict shape an endpoint of one kind decodes into: kind,
// url, auth (one field per declared key), tls, limits and timeout.
type endpointShape struct {
	typ  reflect.Type
	auth []AuthField // the fields of the auth struct, in order
}

// Field indexes of an endpointShape's struct.
const (
	epKind = iota
	epURL
	epAuth
	epTLS
	epLimits
	epTimeout
)

func newEndpointShape(auth []AuthField) *endpointShape {
	fields := make([]reflect.StructField, len(auth))
	for i, f := range auth {
		t := reflect.TypeFor[string]()
		if f.Secret {
			t = secretType
		}
		fields[i] = reflect.StructField{Name: "F" + strconv.Itoa(i), Type: t, Tag: reflect.StructTag(`yaml:"` + f.Name + `"`)}
	}
	tag := func(s string) reflect.StructTag { return reflect.StructTag(`yaml:"` + s + `"`) }
	typ := reflect.StructOf([]reflect.StructField{
		epKind:    {Name: "Kind", Type: reflect.TypeFor[string](), Tag: tag("kind")},
		epURL:     {Name: "URL", Type: reflect.TypeFor[string](), Tag: tag("url")},
		epAuth:    {Name: "Auth", Type: reflect.StructOf(fields), Tag: tag("auth")},
		epTLS:     {Name: "TLS", Type: reflect.TypeFor[TLS](), Tag: tag("tls")},
		epLimits:  {Name: "Limits", Type: reflect.TypeFor[Limits](), Tag: tag("limits")},
		epTimeout: {Name: "Timeout", Type: reflect.TypeFor[Duration](), Tag: tag("timeout")},
	})
	return &endpointShape{typ: typ, auth: auth}
}

// endpointKinds indexes the declared kinds of one Parse.
type endpointKinds struct {
	names  []string // in declaration order, for messages
	shapes map[string]*endpointShape
	// any is the shape of an endpoint whose kind is missing or unknown: every key
	// some kind declares, so that its other problems are still all reported.
	any *endpointShape
}

func newEndpointKinds(kinds []EndpointKind) (*endpointKinds, error) {
	ek := &endpointKinds{shapes: map[string]*endpointShape{}}
	var errs []error
	var union []AuthField
	inUnion := map[string]int{}
	for _, k := range kinds {
		if err := k.Check(); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, dup := ek.shapes[k.Name]; dup {
			errs = append(errs, fmt.Errorf("endpoint kind %s declared twice", k.Name))
			continue
		}
		ek.names = append(ek.names, k.Name)
		ek.shapes[k.Name] = newEndpointShape(k.Auth)
		for _, f := range k.Auth {
			f.Identity = ""
			if i, ok := inUnion[f.Name]; ok {
				union[i].Secret = union[i].Secret || f.Secret
				continue
			}
			inUnion[f.Name] = len(union)
			union = append(union, f)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("plan: LoadOptions.EndpointKinds: %w", errors.Join(errs...))
	}
	ek.any = newEndpointShape(union)
	return ek, nil
}

// known lists the kind names for messages.
func (ek *endpointKinds) known() string {
	if len(ek.names) == 0 {
		return "(no endpoint kind is known)"
	}
	return strings.Join(ek.names, ", ")
}

// decodeEndpoint decodes an endpoint's mapping strictly into the shape of the kind
// it names (its auth may hold only the keys that kind declares).
func (l *loader) decodeEndpoint(name string, k, node *yaml.Node) (*Endpoint, error) {
	sh := l.kinds.any
	if kn := valueOf(node, "kind"); kn != node && kn.Kind == yaml.ScalarNode {
		if s, ok := l.kinds.shapes[kn.Value]; ok {
			sh = s
		}
	}
	v := reflect.New(sh.typ)
	if err := decodeStrict(l.file, node, v.Interface(), l.pol); err != nil {
		return nil, err
	}
	e := v.Elem()
	ep := &Endpoint{Name: name, Pos: l.pos(k),
		Kind:    e.Field(epKind).String(),
		URL:     e.Field(epURL).String(),
		TLS:     e.Field(epTLS).Interface().(TLS),
		Limits:  e.Field(epLimits).Interface().(Limits),
		Timeout: e.Field(epTimeout).Interface().(Duration),
	}
	av := e.Field(epAuth)
	common := reflect.ValueOf(&ep.Auth).Elem()
	for i, f := range sh.auth {
		fv := av.Field(i)
		if j, ok := authIndex[f.Name]; ok {
			common.Field(j).Set(fv)
		} else if f.Secret {
			if s := fv.Interface().(Secret); !s.IsZero() {
				if ep.Auth.ExtraSecrets == nil {
					ep.Auth.ExtraSecrets = map[string]Secret{}
				}
				ep.Auth.ExtraSecrets[f.Name] = s
			}
		} else if s := fv.String(); s != "" {
			if ep.Auth.Extra == nil {
				ep.Auth.Extra = map[string]string{}
			}
			ep.Auth.Extra[f.Name] = s
		}
		if f.Identity != "" && !f.Secret && fv.String() != "" {
			ep.Identity = append(ep.Identity, f.Identity+"="+fv.String())
		}
	}
	return ep, nil
}
