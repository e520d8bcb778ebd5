package nx

import (
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"provision/plan"
	"provision/providers"
)

// Plan sections and the endpoint kind of this package.
const (
	SystemsSection = "nx_systems"
	SharesSection  = "nx_shares"
	EndpointKind   = "nx-cloud"
)

// Kinds returns the kinds of this package: nx_systems and nx_shares.
func Kinds() []providers.Kind { return []providers.Kind{&SystemKind{}, &ShareKind{}} }

var (
	_ providers.Kind   = (*SystemKind)(nil)
	_ providers.Kind   = (*ShareKind)(nil)
	_ providers.Action = (*systemAction)(nil)
	_ providers.Action = (*shareAction)(nil)
	_ providers.Prober = (*systemAction)(nil)
	_ providers.Prober = (*shareAction)(nil)
)

// Roles are the documented cloud access roles.
var Roles = []string{"none", "disabled", "custom", "liveViewer", "viewer", "advancedViewer", "localAdmin", "cloudAdmin", "maintenance", "owner", "system"}

// Modes of an nx_systems item.
var Modes = []string{"new", "existing", "auto"}

// MinPasswordLen is the shortest local admin password a setup accepts (inference:
// Nx servers refuse passwords under 8 characters).
const MinPasswordLen = 8

// UserSpec is one share of a system with a cloud account.
type UserSpec struct {
	Email             string `yaml:"email" json:"email"`
	Role              string `yaml:"role" json:"role"`
	UserRoleID        string `yaml:"user_role_id" json:"user_role_id,omitempty"`
	CustomPermissions string `yaml:"custom_permissions" json:"custom_permissions,omitempty"`
	Enabled           *bool  `yaml:"enabled" json:"enabled,omitempty"`
	VMSUserID         string `yaml:"vms_user_id" json:"vms_user_id,omitempty"`
}

// share is the cloud's form of the spec.
func (u *UserSpec) share() Share {
	return Share{AccountEmail: strings.ToLower(u.Email), AccessRole: u.Role, UserRoleID: u.UserRoleID, CustomPermissions: u.CustomPermissions,
		IsEnabled: u.Enabled == nil || *u.Enabled, VMSUserID: u.VMSUserID}
}

// AdminSpec are a server's local admin credentials.
type AdminSpec struct {
	Username string      `yaml:"username" json:"username"`
	Password plan.Secret `yaml:"password" json:"password"`
}

// SystemSpec is one nx_systems item. Users are not part of the system task's hash
// (each becomes its own share task).
type SystemSpec struct {
	Cloud         string         `yaml:"cloud" json:"cloud"`
	SystemName    string         `yaml:"system_name" json:"system_name"`
	Customization string         `yaml:"customization" json:"customization"`
	Organization  string         `yaml:"organization" json:"organization,omitempty"`
	URL           string         `yaml:"url" json:"url"`
	Admin         AdminSpec      `yaml:"admin" json:"admin"`
	Mode          string         `yaml:"mode" json:"mode"`
	LocalPassword plan.Secret    `yaml:"local_password" json:"local_password"`
	Settings      map[string]any `yaml:"settings" json:"settings,omitempty"`
	TLS           plan.TLS       `yaml:"tls" json:"tls"`
	Users         []UserSpec     `yaml:"users" json:"-"`
}

// ShareSpec is one nx_shares item (and the spec of an nx_systems user's share task).
type ShareSpec struct {
	Cloud         string `yaml:"cloud" json:"cloud"`
	System        string `yaml:"system" json:"system,omitempty"`
	CloudSystemID string `yaml:"cloud_system_id" json:"cloud_system_id,omitempty"`
	UserSpec      `yaml:",inline"`
}

// hasRef reports whether s still holds an output reference (resolved at run time,
// so not validated at build time).

// problems collects build errors of one item, each at the position of its field.
type problems struct {
	item *plan.Item
	errs []error
}

func (p *problems) add(path []any, format string, args ...any) {
	pos := p.item.Pos
	for i := len(path); i > 0; i-- {
		if n := providers.FieldNode(p.item.Fields(), path[:i]...); n != nil {
			pos = plan.NodePos(p.item.Pos.File, n)
			break
		}
	}
	name := p.item.Name
	if p.item.Origin != "" {
		name += " (" + p.item.Origin + ")"
	}
	p.errs = append(p.errs, plan.Where(pos, fmt.Errorf("%s: %s: %s", name, fieldName(path), fmt.Sprintf(format, args...))))
}

func (p *problems) addErr(err error) {
	if err != nil {
		p.errs = append(p.errs, err)
	}
}

func (p *problems) err() error { return errors.Join(p.errs...) }

func fieldName(path []any) string {
	var b strings.Builder
	for _, step := range path {
		switch k := step.(type) {
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(k)
		case int:
			b.WriteString("[" + strconv.Itoa(k) + "]")
		}
	}
	return b.String()
}

func contains(l []string, s string) bool {
	for _, e := range l {
		if e == s {
			return true
		}
	}
	return false
}

// validEmail accepts a bare address (no display name, no angle brackets).
func validEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && strings.Contains(s, "@")
}

// checkUser validates a share's fields; at is the path of the user in the item.
func checkUser(p *problems, u *UserSpec, at []any) {
	f := func(k string) []any { return append(append([]any(nil), at...), k) }
	switch {
	case u.Email == "":
		p.add(f("email"), "required (the cloud account's email address)")
	case !providers.HasRef(u.Email) && !validEmail(u.Email):
		p.add(f("email"), "%q is not an email address", u.Email)
	}
	switch {
	case u.Role == "":
		p.add(f("role"), "required (one of %s)", strings.Join(Roles, ", "))
	case !providers.HasRef(u.Role) && !contains(Roles, u.Role):
		p.add(f("role"), "%q is not one of %s", u.Role, strings.Join(Roles, ", "))
	case u.Role == "custom" && u.CustomPermissions == "":
		p.add(f("custom_permissions"), "required with role custom")
	}
}

var uuidRE = regexp.MustCompile(`^\{?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}?$`)

// serverURL validates a server URL and returns its normal form (for uniqueness).
func serverURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Hostname() == "" {
		return "", fmt.Errorf("%q is not an http(s) URL with a host, e.g. https://10.0.0.5:7001", raw)
	}
	if u.User != nil {
		return "", fmt.Errorf("%q carries credentials: give them in admin instead", u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%q has a query or fragment: give the server's base URL only", raw)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("%q: port %s is out of range", raw, p)
		}
	}
	return u.Scheme + "://" + strings.ToLower(u.Host) + strings.TrimRight(u.Path, "/"), nil
}

// scalarSetting reports whether v is a value a system setting can take.
func scalarSetting(v any) bool {
	switch v.(type) {
	case string, bool, int, int64, uint64, float64:
		return true
	}
	return false
}

// claim records that key belongs to owner for this build and returns the owner that
// claimed it first (another item's name when the key is taken).
func claim(b *providers.Build, key, owner string) string {
	v, _ := b.Clients.Get("nx-claim:"+key, func() (any, error) { return owner, nil })
	return v.(string)
}

// systemItems is the set of nx_systems item names of the plan (built once per build).
func systemItems(b *providers.Build) map[string]bool {
	v, _ := b.Clients.Get("nx-index:systems", func() (any, error) {
		m := map[string]bool{}
		if b.Plan != nil {
			for _, it := range b.Plan.Items {
				if it.Section == SystemsSection {
					m[it.Name] = true
				}
			}
		}
		return m, nil
	})
	return v.(map[string]bool)
}

// cloudClient returns the shared client of an nx-cloud endpoint (validating its auth).
func cloudClient(b *providers.Build, p *problems, name string) *Cloud {
	pos := p.item.Pos
	if n := providers.FieldNode(p.item.Fields(), "cloud"); n != nil {
		pos = plan.NodePos(p.item.Pos.File, n)
	}
	if name == "" {
		p.add([]any{"cloud"}, "required (the name of an endpoint of kind %s)", EndpointKind)
		return nil
	}
	ep, err := b.Endpoint(pos, name, EndpointKind)
	if err != nil {
		p.add([]any{"cloud"}, "%v", errors.Unwrap(err))
		return nil
	}
	c, err := b.Clients.Get("nx-cloud:"+ep.Name, func() (any, error) { return NewCloud(ep, b.Plan.Redactor) })
	if err != nil {
		p.addErr(plan.Where(ep.Pos, fmt.Errorf("endpoint %s: %w", ep.Name, err)))
		return nil
	}
	return c.(*Cloud)
}

func sortedIDs(l []System) []string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = s.ID
	}
	sort.Strings(out)
	return out
}
