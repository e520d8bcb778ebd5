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
	"provision/providers/rest"
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
	_ providers.Kind             = (*SystemKind)(nil)
	_ providers.Kind             = (*ShareKind)(nil)
	_ providers.EndpointDeclarer = (*SystemKind)(nil)
	_ providers.EndpointDeclarer = (*ShareKind)(nil)
	_ providers.Action           = (*systemAction)(nil)
	_ providers.Action           = (*shareAction)(nil)
	_ providers.Prober           = (*systemAction)(nil)
	_ providers.Prober           = (*shareAction)(nil)
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
func checkUser(p *providers.Problems, u *UserSpec, at providers.Path) {
	f := func(k string) providers.Path { return append(append(providers.Path(nil), at...), k) }
	switch {
	case u.Email == "":
		p.Add(f("email"), "required (the cloud account's email address)")
	case !providers.HasRef(u.Email) && !validEmail(u.Email):
		p.Add(f("email"), "%q is not an email address", u.Email)
	}
	switch {
	case u.Role == "":
		p.Add(f("role"), "required (one of %s)", strings.Join(Roles, ", "))
	case !providers.HasRef(u.Role) && !contains(Roles, u.Role):
		p.Add(f("role"), "%q is not one of %s", u.Role, strings.Join(Roles, ", "))
	case u.Role == "custom" && u.CustomPermissions == "":
		p.Add(f("custom_permissions"), "required with role custom")
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

// buildState is what one build shares between nx items and tasks.
type buildState struct {
	// systems is the set of nx_systems item names of the plan.
	systems map[string]bool
	// servers holds one client per server URL.
	servers providers.Cache[*Server]
	// transports are shared by the servers' clients, one per TLS configuration: a
	// client per server, not a transport and its idle connections per server.
	transports rest.Transports
}

func stateOf(b *providers.Build) *buildState {
	return providers.StateOf(b, "nx", func() *buildState {
		st := &buildState{systems: map[string]bool{}}
		if b.Plan != nil {
			for _, it := range b.Plan.Items {
				if it.Section == SystemsSection {
					st.systems[it.Name] = true
				}
			}
		}
		return st
	})
}

// claim records that key belongs to the item (owner) for this build, declared at
// the field at path. It returns the first claimant of a key another owner claimed
// first ("ITEM (FILE:LINE:COL)"), else "".
func claim(b *providers.Build, p *providers.Problems, path providers.Path, key, owner string) string {
	var ce *providers.ClaimError
	if err := b.Claim("nx", key, owner, p.Pos(path)); errors.As(err, &ce) {
		return fmt.Sprintf("%s (%s)", ce.By, ce.ByPos)
	}
	return ""
}

// cloudClient returns the shared client of the nx-cloud endpoint the item's cloud
// field names (validating its auth), or nil after recording a problem.
func cloudClient(b *providers.Build, p *providers.Problems, name string) *Cloud {
	c, _ := providers.FieldClient(b, p, providers.Path{"cloud"}, name, EndpointKind, func(ep *plan.Endpoint) (*Cloud, error) {
		return NewCloud(ep, b.Plan.Redactor)
	})
	return c
}

func sortedIDs(l []System) []string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = s.ID
	}
	sort.Strings(out)
	return out
}
