// Package plan reads a provisioning plan: strict YAML decoding with file:line:col
// errors, variables, secret references, bulk expansion (inline list, numeric range,
// CSV file) and per-section defaults. It knows nothing about vendors: the sections it
// accepts are given by the caller (see LoadOptions.Sections), and each expanded item
// keeps its fields as a YAML node for the provider to decode.
//
// Interpolation, applied to scalar values after parsing (never to the raw text):
//
//	${var.NAME}          plan var, overridable with --var NAME=VALUE
//	${row.COL}           field of the current foreach row (the name after "as:", default "row")
//	${env.NAME}          secret: environment variable, resolved after hashing, never printed
//	${file.PATH}         secret: file content (path relative to the plan), trailing newline trimmed
//	${outputs.ITEM.KEY}  output of another item, resolved at run time; implies a dependency
//	$${                  a literal "${"
//
// A Plan is read-only after Load and safe for concurrent use.
package plan

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// Pos is a position in a plan file or a file it references (CSV).
type Pos struct {
	File string
	Line int
	Col  int
}

func (p Pos) String() string {
	switch {
	case p.File == "":
		return "-"
	case p.Line == 0:
		return p.File
	case p.Col == 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Plan is a loaded, expanded plan.
type Plan struct {
	Version int
	Name    string
	// File is the plan's path as given to Load; Dir is its directory (base of relative paths).
	File string
	Dir  string
	// Vars are the plan vars after --var overrides.
	Vars map[string]string
	// Endpoints by name, and their names in file order.
	Endpoints     map[string]*Endpoint
	EndpointOrder []string
	// Items in plan order (section order, then entry order, then row order).
	Items []*Item
	// Redactor knows every secret value the plan resolved; sinks pass text through it.
	Redactor *Redactor
}

// Endpoint is a named remote API connection.
type Endpoint struct {
	Name string
	Kind string // http, nx-cloud, edge, openvcloud, cloudneeti
	URL  string // may include a path prefix
	Pos  Pos
	Auth Auth
	TLS  TLS
	// Limits apply to every request sent to this endpoint by any task.
	Limits Limits
	// Timeout per request; 0 means the default (30s).
	Timeout Duration
}

// Auth holds endpoint credentials. Which fields a kind needs is checked by the provider.
type Auth struct {
	// Type: none, basic, bearer, oauth2-password, oauth2-client-credentials, or empty for the
	// kind's default (nx-cloud: oauth2-password, edge: login, openvcloud: itsyouonline or
	// session, cloudneeti: license token).
	Type         string `yaml:"type"`
	Username     string `yaml:"username"`
	Password     Secret `yaml:"password"`
	Token        Secret `yaml:"token"`
	ClientID     string `yaml:"client_id"`
	ClientSecret Secret `yaml:"client_secret"`
	TokenURL     string `yaml:"token_url"`
	Scope        string `yaml:"scope"`
	// Vendor extras (cloudneeti: subscription key, license and optional account).
	APIKey    Secret `yaml:"api_key"`
	LicenseID string `yaml:"license_id"`
	AccountID string `yaml:"account_id"`
}

// TLS options for an endpoint or a server. At most one of CAFile, Fingerprint and Insecure
// changes verification; CAFile and Fingerprint may be combined (both must pass).
type TLS struct {
	CAFile string `yaml:"ca_file"` // PEM bundle, relative to the plan
	// Fingerprint is the SHA-256 of the leaf certificate (DER), hex, colons optional.
	Fingerprint string `yaml:"fingerprint_sha256"`
	Insecure    bool   `yaml:"insecure"`
	ServerName  string `yaml:"server_name"`
	// CAPEM is filled by Load from CAFile (resolved relative to the plan).
	CAPEM []byte `yaml:"-"`
}

// Limits cap the load a run puts on one endpoint.
type Limits struct {
	Concurrency   int     `yaml:"concurrency"`     // 0: no cap beyond --parallel
	RatePerSecond float64 `yaml:"rate_per_second"` // 0: unlimited
	Burst         int     `yaml:"burst"`           // 0: max(1, ceil(rate))
}

// Item is one expanded plan entry: a foreach entry yields one Item per row.
type Item struct {
	Section string
	// Name is unique across the plan; it is the task ID of the item's main task.
	Name string
	// Pos is the position of the entry; Origin names the row source for expanded entries
	// ("stores.csv:17", "range 42", "list[3]"), empty otherwise.
	Pos    Pos
	Origin string
	// Fields is a mapping node: the entry's fields (without name, depends_on, foreach)
	// deep-merged over the section defaults, with vars, rows and secrets substituted.
	// Output references (${outputs.ITEM.KEY}) are left in place. Nodes keep the line and
	// column of the text they came from.
	Fields *yaml.Node
	// DependsOn are explicit dependencies (item names, globs already expanded).
	DependsOn []string
	// Refs are the output references found in Fields (implicit dependencies).
	Refs []Ref
	// Hash identifies the item's spec: section, name and fields with secret references
	// unresolved (so a hash never depends on, nor reveals, a secret value).
	Hash [32]byte
}

// Ref is an output reference ${outputs.Item.Key}.
type Ref struct {
	Item string
	Key  string
	Pos  Pos
}

// Duration is a time.Duration that decodes from "30s"-style strings.
type Duration = durationT

// Where wraps err with a position: "plan.yaml:12:5: err".
func Where(p Pos, err error) error { return &PosError{Pos: p, Err: err} }

// PosError is an error at a position in the plan.
type PosError struct {
	Pos Pos
	Err error
}

func (e *PosError) Error() string { return e.Pos.String() + ": " + e.Err.Error() }
func (e *PosError) Unwrap() error { return e.Err }

// NodePos returns the position of n in file.
func NodePos(file string, n *yaml.Node) Pos {
	if n == nil {
		return Pos{File: file}
	}
	return Pos{File: file, Line: n.Line, Col: n.Column}
}

var _ = yaml.Node{}
