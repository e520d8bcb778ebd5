// Package plan reads a provisioning plan: strict YAML decoding with file:line:col
// errors, variables, secret references, bulk expansion (CSV file, inline list, numeric
// range, and products of them) and per-section defaults. It knows nothing about
// vendors: the item sections it accepts are given by the caller (LoadOptions.Sections),
// and each expanded item keeps its fields as a YAML node for the provider to decode
// (DecodeStrict).
//
// # Document
//
//	version: 1                      # required
//	name: retail-q4                 # required, 1-100 of A-Z a-z 0-9 . _ -
//	vars:                           # plain values (numbers and booleans kept as text);
//	  cloud_url: https://nxvms.com  #   --var NAME=VALUE overrides a declared var
//	endpoints:
//	  nxcloud:                      # 1-64 of A-Z a-z 0-9 _ -
//	    kind: nx-cloud              # one of LoadOptions.EndpointKinds
//	    url: ${var.cloud_url}       # absolute http(s) base URL, may end in a path prefix
//	    auth: {username: ops@example.com, password: ${env.NX_CLOUD_PASSWORD}}  # the keys the kind declares
//	    tls: {ca_file: ca.pem, fingerprint_sha256: "AB:CD:...", server_name: nx.local}
//	    limits: {concurrency: 8, rate_per_second: 20, burst: 5, max_retry_after: 30s}
//	    timeout: 30s
//	nx_systems:                     # an item section
//	  defaults:                     # deep-merged under every entry of the section
//	    cloud: nxcloud
//	  items:
//	    - name: store-${row.store}  # unique in the whole plan after expansion
//	      foreach: {csv: stores.csv}
//	      depends_on: [hq, "region-*"]
//	      url: https://${row.ip}:7001   # any other key is a field for the provider
//
// Item names are 1-200 of A-Z a-z 0-9 . _ @ / : + -. depends_on takes a name or a list
// of names and patterns (path.Match: *, ?, [...]; "*" does not match "/"); a name must
// exist, a pattern must match at least one item other than the one that uses it (a
// pattern never matches its own item). Defaults merge mapping by mapping (the entry
// wins); an entry's list, scalar or null replaces the default (headers: ~ removes a
// default). name, depends_on and foreach cannot have defaults.
//
// # foreach
//
// An entry with foreach stands for one item per row:
//
//	{csv: stores.csv}                     ${row.COLUMN}; header row required, UTF-8 (BOM
//	                                      ok), cells trimmed, at most MaxCSVBytes
//	{list: [a, b]}                        ${row.value}
//	{list: [{id: 1, zone: eu}, ...]}      ${row.id}, ${row.zone}
//	{range: {from: 1, to: 100, step: 1, format: "%03d"}}   ${row.value} (formatted)
//
// Every source also has ${row.index}, the 0-based row number (a CSV column or list field
// named index wins). "as: NAME" renames "row"; a list of sources is their product
// (first source outermost), each with its own as. The foreach may use ${var.X}
// (csv: ${var.stores}, to: ${var.count}). The size of the expansion is checked against
// LoadOptions.MaxItems before any row is built. Item.Origin names the row:
// "stores.csv:17", "list[3]", "range 42", or "list[1] x range 7" for a product.
//
// # References
//
// Applied to scalar values after parsing, never to mapping keys or to the raw text:
//
//	${var.NAME}          plan var
//	${row.COL}           field of the current foreach row (the name after "as:", default "row")
//	${env.NAME}          secret: environment variable, resolved after hashing, never printed
//	${file.PATH}         secret: file content (relative to the plan, at most 1 MiB),
//	                     trailing newlines trimmed
//	${outputs.ITEM.KEY}  output of another item, resolved at run time (ResolveRefs); the
//	                     item name may use rows: ${outputs.store-${row.id}.id}; the
//	                     caller checks KEY against ITEM's outputs (providers.CheckOutputRefs)
//	$${                  a literal "${" (so "$" cannot directly precede a reference)
//
// Rules:
//
//   - Values inserted by a reference (vars, rows, secrets, --var) are data: a "${" in them
//     is not expanded.
//   - A scalar that is exactly one reference, quoted or not (port: ${row.port}, or
//     {port: "${row.port}"} in a flow collection, where YAML needs the quotes), takes
//     the type of its value: it fills an int field, and a string one. An explicit tag
//     keeps a string where the type matters, as in a free-form body: id: !!str ${row.id}
//     keeps "007" from becoming 7. Any other interpolated scalar is a string.
//   - Secrets are resolved once, must have at least MinSecretLen (8) characters (shorter
//     values are guessable and too common in ordinary text to be redacted reliably), are
//     added to Plan.Redactor, and always make a string tagged SecretTag. They may be used
//     in item fields and endpoints, not in vars, names, depends_on or foreach.
//   - A field of type Secret (endpoint auth, and the provider fields DecodeItem checks)
//     must hold a secret reference, an output reference or a foreach row value (which
//     is then registered with Plan.Redactor); a value written in the plan (literally or
//     through a plan var) is refused, except PublicDefaultPassword ("admin", the
//     factory default of a new Nx server), and so is a --var value (the command line is
//     visible to every local user).
//   - Vars cannot hold references. Output references are allowed in item fields only; a
//     scalar that holds one keeps "$${" escaped until ResolveRefs unescapes it.
//
// YAML anchors, aliases and merge keys (<<: *base) may be used; a plan is one UTF-8
// YAML document of at most MaxPlanBytes. A plain number written with a leading zero
// (052, read as octal 42 by YAML 1.1 rules) is refused in id fields (id, *_id, *Id),
// number fields and free-form values: it must be quoted.
//
// # Hash
//
// Item.Hash is SHA-256 over the section, the name and a canonical form of the fields
// after vars and rows are substituted but before secrets are: mapping keys sorted,
// every node tagged with its kind, every scalar with its type (so "80" and 80 differ)
// and length. Key order, quoting and layout do not change a hash; a secret's value
// never enters it, only its reference.
//
// # Errors
//
// Load and Parse return every problem at once: errors.Join of *PosError, sorted by
// file, line and column, deduplicated, at most a few per position (then a count).
// Errors name the field path (nx_systems.items[3].foreach.csv) and the offending value,
// except secret ones. A Plan is read-only after Load and safe for concurrent use.
package plan

import (
	"fmt"
	"time"

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
	Kind string // one of LoadOptions.EndpointKinds
	URL  string // may include a path prefix
	Pos  Pos
	Auth Auth
	TLS  TLS
	// Limits apply to every request sent to this endpoint by any task.
	Limits Limits
	// Timeout per request; 0 means the default (30s).
	Timeout Duration
	// Identity names the account the endpoint acts as: "LABEL=VALUE" for every auth
	// field its kind marks (AuthField.Identity) that the plan sets, in the order the
	// kind declares them. Never a secret.
	Identity []string
}

// Auth holds endpoint credentials: the keys under an endpoint's auth. A plan may set
// only the keys its endpoint's kind declares (EndpointKind.Auth); which ones a kind
// needs is checked by the provider. The fields below are the common ones, the words
// of HTTP and OAuth2 authentication several kinds share; a kind's own keys are in
// Extra and ExtraSecrets.
type Auth struct {
	// Type: none, basic, bearer, oauth2-password, oauth2-client-credentials, or empty
	// for the kind's default; which types a kind accepts is the provider's to say.
	Type         string `yaml:"type"`
	Username     string `yaml:"username"`
	Password     Secret `yaml:"password"`
	Token        Secret `yaml:"token"`
	ClientID     string `yaml:"client_id"`
	ClientSecret Secret `yaml:"client_secret"`
	TokenURL     string `yaml:"token_url"`
	Scope        string `yaml:"scope"`
	// Extra holds the values of the kind's own plain keys and ExtraSecrets those of
	// its own secret keys (AuthField.Secret), by key; a key the plan leaves out is
	// absent.
	Extra        map[string]string `yaml:"-"`
	ExtraSecrets map[string]Secret `yaml:"-"`
}

// EndpointKind declares an endpoint kind a plan may use and the keys its auth
// accepts. The provider packages declare them; LoadOptions.EndpointKinds lists the
// ones a plan may use.
type EndpointKind struct {
	// Name is what an endpoint's kind: says, e.g. "http".
	Name string
	// Auth lists every key the kind accepts under auth, common ones (Auth's fields)
	// and the kind's own; an endpoint setting any other key is refused.
	Auth []AuthField
}

// AuthField declares one key under an endpoint's auth.
type AuthField struct {
	Name string
	// Secret: the value must come from a secret reference (as for every Secret
	// field) and is never shown. A common key keeps the type Auth gives it
	// (password, token and client_secret are secrets); declaring it otherwise is
	// an error (EndpointKind.Check).
	Secret bool
	// Identity, when set, labels the value in Endpoint.Identity (the account a state
	// file records the endpoint by): "user", "license". Not allowed on a secret.
	Identity string
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
	// MaxRetryAfter caps the pause a 429's Retry-After imposes on the whole endpoint
	// (0: the client's default, 30s); a hostile or broken server cannot stall a run.
	MaxRetryAfter Duration `yaml:"max_retry_after"`
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
	// fields is the item's field tree, built on demand by Fields from the entry's
	// shape and the row's values (see Fields).
	shape *shape
	vals  []ival
	// DependsOn are explicit dependencies (item names, globs already expanded).
	DependsOn []string
	// Refs are the output references found in Fields (implicit dependencies).
	Refs []Ref
	// Hash identifies the item's spec: section, name and fields with secret references
	// unresolved (so a hash never depends on, nor reveals, a secret value).
	Hash [32]byte

	pol *secretPolicy // what DecodeItem accepts in secret fields
}

// Ref is an output reference ${outputs.Item.Key}.
type Ref struct {
	Item string
	Key  string
	Pos  Pos
}

// Duration is a time.Duration that decodes from "30s"-style strings. A plain number
// ("30") is refused: its unit would be a guess.
type Duration struct{ time.Duration }

// D returns the duration.
func (d Duration) D() time.Duration { return d.Duration }

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
