package providers

import (
	"strings"
	"testing"

	"provision/plan"
)

// declKind is a Kind that declares endpoint kinds; it builds nothing.
type declKind struct {
	section string
	eks     []plan.EndpointKind
}

func (k declKind) Section() string                             { return k.section }
func (k declKind) Doc() string                                 { return "" }
func (k declKind) Build(*Build, *plan.Item) ([]*Task, error)   { return nil, nil }
func (k declKind) Outputs(*plan.Item) []string                 { return nil }
func (k declKind) EndpointKinds() []plan.EndpointKind          { return k.eks }
func (k declKind) withKinds(eks ...plan.EndpointKind) declKind { k.eks = eks; return k }

func TestRegistry_EndpointKindsOnceInRegistrationOrder(t *testing.T) {
	a := plan.EndpointKind{Name: "zeta", Auth: []plan.AuthField{{Name: "username", Identity: "user"}}}
	b := plan.EndpointKind{Name: "alpha"}
	r := NewRegistry(declKind{section: "s2"}.withKinds(a), declKind{section: "s1"}.withKinds(a, b), declKind{section: "s3"})
	got := r.EndpointKinds()
	if len(got) != 2 || got[0].Name != "zeta" || got[1].Name != "alpha" {
		t.Fatalf("EndpointKinds() = %+v", got)
	}
	if ek, ok := r.EndpointKind("zeta"); !ok || len(ek.Auth) != 1 {
		t.Fatalf("EndpointKind(zeta) = %+v, %v", ek, ok)
	}
	if _, ok := r.EndpointKind("nope"); ok {
		t.Fatal("EndpointKind(nope) found")
	}
	o := r.LoadOptions()
	if strings.Join(o.Sections, ",") != "s1,s2,s3" || len(o.EndpointKinds) != 2 {
		t.Fatalf("LoadOptions() = %+v", o)
	}
}

func TestNewRegistry_PanicsOnBadOrDisagreeingDeclarations(t *testing.T) {
	for _, tc := range []struct {
		name  string
		kinds []Kind
		want  string
	}{
		{"invalid", []Kind{declKind{section: "s"}.withKinds(plan.EndpointKind{Name: "k", Auth: []plan.AuthField{{Name: "password"}}})}, `section s: endpoint kind k: auth key "password" is a common key`},
		{"disagreeing", []Kind{
			declKind{section: "s1"}.withKinds(plan.EndpointKind{Name: "k", Auth: []plan.AuthField{{Name: "username"}}}),
			declKind{section: "s2"}.withKinds(plan.EndpointKind{Name: "k"}),
		}, "section s2 declares endpoint kind k unlike an earlier section"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if s, _ := r.(string); !strings.Contains(s, tc.want) {
					t.Fatalf("panic %v, want %q", r, tc.want)
				}
			}()
			NewRegistry(tc.kinds...)
		})
	}
}
