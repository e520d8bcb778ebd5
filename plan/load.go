package plan

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// LoadOptions tune Load.
type LoadOptions struct {
	// Sections are the item sections the plan may use (from the provider registry).
	Sections []string
	// Vars override plan vars (--var). Overriding an undeclared var is an error.
	Vars map[string]string
	// Getenv resolves ${env.X}; nil means os.LookupEnv.
	Getenv func(string) (string, bool)
	// MaxItems caps the expanded plan (default DefaultMaxItems).
	MaxItems int
}

// Limits on input sizes.
const (
	DefaultMaxItems = 500_000
	MaxPlanBytes    = 16 << 20
	MaxCSVBytes     = 64 << 20
)

// EndpointKinds are the endpoint kinds a plan may use.
var EndpointKinds = []string{"http", "nx-cloud", "edge", "openvcloud", "cloudneeti"}

var (
	nameRE     = regexp.MustCompile(`^[A-Za-z0-9._-]{1,100}$`)
	itemNameRE = regexp.MustCompile(`^[A-Za-z0-9._@/:+-]{1,200}$`)
	epNameRE   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

// Load reads and expands the plan at path.
func Load(path string, o LoadOptions) (*Plan, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("read plan %s: is a directory", path)
	}
	if fi.Size() > MaxPlanBytes {
		return nil, fmt.Errorf("read plan %s: %d bytes is more than the %d MiB a plan may have (use foreach with a CSV file for large fleets)", path, fi.Size(), MaxPlanBytes>>20)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	return Parse(path, data, o)
}

// loader holds the state of one Parse.
type loader struct {
	file     string
	dir      string
	o        LoadOptions
	errs     []error
	p        *Plan
	sections map[string]bool
	sec      *secretResolver
	names    map[string]Pos
	pending  []pendingDeps
}

type pendingDeps struct {
	item *Item
	deps []depRef
}

type depRef struct {
	pattern string
	pos     Pos
}

func (l *loader) errf(pos Pos, format string, a ...any) {
	l.errs = append(l.errs, Where(pos, fmt.Errorf(format, a...)))
}

func (l *loader) pos(n *yaml.Node) Pos { return NodePos(l.file, n) }

// Parse reads a plan from data; file names it in errors and is the base of relative paths.
func Parse(file string, data []byte, o LoadOptions) (*Plan, error) {
	if len(data) > MaxPlanBytes {
		return nil, fmt.Errorf("%s: %d bytes is more than the %d MiB a plan may have", file, len(data), MaxPlanBytes>>20)
	}
	if o.Getenv == nil {
		o.Getenv = os.LookupEnv
	}
	if o.MaxItems <= 0 {
		o.MaxItems = DefaultMaxItems
	}
	dir := filepath.Dir(file)
	red := NewRedactor()
	l := &loader{file: file, dir: dir, o: o, sections: map[string]bool{}, names: map[string]Pos{},
		p:   &Plan{File: file, Dir: dir, Vars: map[string]string{}, Endpoints: map[string]*Endpoint{}, Redactor: red},
		sec: &secretResolver{dir: dir, getenv: o.Getenv, red: red}}
	for _, s := range o.Sections {
		l.sections[s] = true
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if err.Error() == "EOF" {
			return nil, Where(Pos{File: file}, errors.New("plan is empty"))
		}
		return nil, yamlErrors(file, &doc, err)[0]
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, Where(l.pos(&extra), errors.New("plan holds more than one YAML document"))
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil, Where(l.pos(root), errors.New("plan must be a mapping with version, name, endpoints and sections"))
	}
	l.parseRoot(root)
	l.resolveDeps()
	if len(l.errs) > 0 {
		return nil, sortErrors(l.errs)
	}
	return l.p, nil
}

func (l *loader) parseRoot(root *yaml.Node) {
	var versionNode, nameNode, varsNode, epNode *yaml.Node
	type sectionNode struct{ key, val *yaml.Node }
	var sections []sectionNode
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if seen[k.Value] {
			l.errf(l.pos(k), "duplicate key %q", k.Value)
			continue
		}
		seen[k.Value] = true
		switch k.Value {
		case "version":
			versionNode = v
		case "name":
			nameNode = v
		case "vars":
			varsNode = v
		case "endpoints":
			epNode = v
		default:
			if !l.sections[k.Value] {
				l.errf(l.pos(k), "unknown top-level key %q (known: version, name, vars, endpoints, %s)", k.Value, strings.Join(sortedCopy(l.o.Sections), ", "))
				continue
			}
			sections = append(sections, sectionNode{k, v})
		}
	}
	rootPos := l.pos(root)
	switch {
	case versionNode == nil:
		l.errf(rootPos, "version: required (version: 1)")
	case versionNode.Kind != yaml.ScalarNode || versionNode.Value != "1":
		l.errf(l.pos(versionNode), "version: %q is not supported (want 1)", versionNode.Value)
	default:
		l.p.Version = 1
	}
	switch {
	case nameNode == nil:
		l.errf(rootPos, "name: required (it names the state file)")
	case nameNode.Kind != yaml.ScalarNode || !nameRE.MatchString(nameNode.Value):
		l.errf(l.pos(nameNode), "name: %q: want 1-100 letters, digits, '.', '_' or '-'", nameNode.Value)
	default:
		l.p.Name = nameNode.Value
	}
	l.parseVars(varsNode)
	l.parseEndpoints(epNode)
	for _, s := range sections {
		l.parseSection(s.key.Value, s.val)
	}
}

func (l *loader) parseVars(n *yaml.Node) {
	declared := map[string]bool{}
	if n != nil {
		if n.Kind != yaml.MappingNode {
			l.errf(l.pos(n), "vars: want a mapping of names to values")
		} else {
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if !epNameRE.MatchString(k.Value) {
					l.errf(l.pos(k), "vars: name %q: want letters, digits, '_' or '-'", k.Value)
					continue
				}
				if v.Kind != yaml.ScalarNode {
					l.errf(l.pos(v), "vars.%s: want a single value, not a list or mapping", k.Value)
					continue
				}
				if strings.Contains(v.Value, "${") && !strings.Contains(v.Value, "$${") {
					l.errf(l.pos(v), "vars.%s: vars cannot hold references (secrets belong in the fields that use them)", k.Value)
					continue
				}
				declared[k.Value] = true
				l.p.Vars[k.Value] = unescape(v.Value)
			}
		}
	}
	for _, k := range sortedKeys(l.o.Vars) {
		if !declared[k] {
			l.errs = append(l.errs, fmt.Errorf("--var %s: the plan declares no var %s (declared: %s)", k, k, strings.Join(sortedKeys(declaredMap(declared)), ", ")))
			continue
		}
		l.p.Vars[k] = l.o.Vars[k]
	}
}

func declaredMap(m map[string]bool) map[string]string {
	out := make(map[string]string, len(m))
	for k := range m {
		out[k] = ""
	}
	return out
}

// endpointYAML is the strict shape of an endpoint.
type endpointYAML struct {
	Kind    string   `yaml:"kind"`
	URL     string   `yaml:"url"`
	Auth    Auth     `yaml:"auth"`
	TLS     TLS      `yaml:"tls"`
	Limits  Limits   `yaml:"limits"`
	Timeout Duration `yaml:"timeout"`
}

func (l *loader) parseEndpoints(n *yaml.Node) {
	if n == nil {
		return
	}
	if n.Kind != yaml.MappingNode {
		l.errf(l.pos(n), "endpoints: want a mapping of endpoint names to endpoints")
		return
	}
	sc := &scope{vars: l.p.Vars, allowSecrets: true}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := k.Value
		if !epNameRE.MatchString(name) {
			l.errf(l.pos(k), "endpoints: name %q: want letters, digits, '_' or '-'", name)
			continue
		}
		if _, dup := l.p.Endpoints[name]; dup {
			l.errf(l.pos(k), "endpoints: duplicate endpoint %q", name)
			continue
		}
		if v.Kind != yaml.MappingNode {
			l.errf(l.pos(v), "endpoints.%s: want a mapping (kind, url, auth, tls, limits, timeout)", name)
			continue
		}
		node, _, err := l.interpolate(v, sc, "endpoints."+name)
		if err != nil {
			continue
		}
		if !l.resolveSecrets(node) {
			continue
		}
		var e endpointYAML
		if err := DecodeStrict(l.file, node, &e); err != nil {
			l.errs = append(l.errs, prefixErrors("endpoints."+name, err)...)
			continue
		}
		ep := &Endpoint{Name: name, Kind: e.Kind, URL: e.URL, Pos: l.pos(k), Auth: e.Auth, TLS: e.TLS, Limits: e.Limits, Timeout: e.Timeout}
		l.checkEndpoint(ep, v)
		for _, s := range []Secret{ep.Auth.Password, ep.Auth.Token, ep.Auth.ClientSecret, ep.Auth.APIKey} {
			l.p.Redactor.Add(s.Reveal())
		}
		l.p.Endpoints[name] = ep
		l.p.EndpointOrder = append(l.p.EndpointOrder, name)
	}
}

func (l *loader) checkEndpoint(ep *Endpoint, n *yaml.Node) {
	at := func(key string) Pos {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return l.pos(n.Content[i+1])
			}
		}
		return ep.Pos
	}
	pre := "endpoints." + ep.Name
	if ep.Kind == "" {
		l.errf(ep.Pos, "%s.kind: required (one of %s)", pre, strings.Join(EndpointKinds, ", "))
	} else if !contains(EndpointKinds, ep.Kind) {
		l.errf(at("kind"), "%s.kind: %q is not one of %s", pre, ep.Kind, strings.Join(EndpointKinds, ", "))
	}
	if ep.URL == "" {
		l.errf(ep.Pos, "%s.url: required", pre)
	} else if u, err := url.Parse(ep.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		l.errf(at("url"), "%s.url: %q is not an absolute http(s) URL", pre, ep.URL)
	}
	t := &ep.TLS
	if t.Insecure && (t.CAFile != "" || t.Fingerprint != "") {
		l.errf(at("tls"), "%s.tls: conflicting TLS options: insecure cannot be combined with ca_file or fingerprint_sha256", pre)
	}
	if t.Fingerprint != "" {
		fp, err := NormalizeFingerprint(t.Fingerprint)
		if err != nil {
			l.errf(at("tls"), "%s.tls.fingerprint_sha256: %v", pre, err)
		}
		t.Fingerprint = fp
	}
	if t.CAFile != "" {
		pem, err := ReadCAFile(l.dir, t.CAFile)
		if err != nil {
			l.errf(at("tls"), "%s.tls.ca_file: %v", pre, err)
		}
		t.CAPEM = pem
	}
	if ep.Limits.Concurrency < 0 || ep.Limits.RatePerSecond < 0 || ep.Limits.Burst < 0 {
		l.errf(at("limits"), "%s.limits: concurrency, rate_per_second and burst must be >= 0", pre)
	}
}

// NormalizeFingerprint turns "AB:CD:..." into lower-case hex without separators.
func NormalizeFingerprint(s string) (string, error) {
	h := strings.ToLower(strings.NewReplacer(":", "", " ", "", "-", "").Replace(strings.TrimSpace(s)))
	if len(h) != 64 {
		return "", fmt.Errorf("want the 64 hex digits of a SHA-256 fingerprint, got %d characters", len(h))
	}
	for _, c := range h {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return "", fmt.Errorf("%q is not a hex digit", c)
		}
	}
	return h, nil
}

// ReadCAFile reads a PEM bundle (relative to dir) and checks it holds a certificate.
func ReadCAFile(dir, name string) ([]byte, error) {
	p := name
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %v", name, errors.Unwrap(err))
	}
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", name)
	}
	return b, nil
}

func prefixErrors(pre string, err error) []error {
	var out []error
	for _, e := range flatten(err) {
		var pe *PosError
		if errors.As(e, &pe) {
			out = append(out, Where(pe.Pos, fmt.Errorf("%s: %w", pre, pe.Err)))
			continue
		}
		out = append(out, fmt.Errorf("%s: %w", pre, e))
	}
	return out
}

func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// interpolate runs phase 1 over a node tree and returns a copy (nodes without
// references are shared: trees are never modified after Load).
func (l *loader) interpolate(n *yaml.Node, sc *scope, field string) (*yaml.Node, found, error) {
	var all found
	var firstErr error
	var walk func(n *yaml.Node) *yaml.Node
	walk = func(n *yaml.Node) *yaml.Node {
		switch n.Kind {
		case yaml.ScalarNode:
			if !strings.Contains(n.Value, "${") {
				return n
			}
			v, f, err := sc.expand(n.Value, l.pos(n))
			if err != nil {
				l.errf(l.pos(n), "%s: %v", field, err)
				if firstErr == nil {
					firstErr = err
				}
				return n
			}
			all.secrets = all.secrets || f.secrets
			all.refs = append(all.refs, f.refs...)
			c := *n
			c.Value = v
			if f.whole && len(f.refs) == 0 && !f.secrets {
				// One reference, quoted or not: the value decides its type, so
				// "${row.port}" can fill an int field and still fill a string one.
				c.Tag, c.Style = "", 0
			} else {
				c.Tag = "!!str"
			}
			return &c
		case yaml.MappingNode, yaml.SequenceNode, yaml.DocumentNode:
			var content []*yaml.Node
			for i, ch := range n.Content {
				nc := walk(ch)
				if nc != ch && content == nil {
					content = make([]*yaml.Node, len(n.Content))
					copy(content, n.Content[:i])
				}
				if content != nil {
					content[i] = nc
				}
			}
			if content == nil {
				return n
			}
			c := *n
			c.Content = content
			return &c
		case yaml.AliasNode:
			return walk(n.Alias)
		}
		return n
	}
	out := walk(n)
	return out, all, firstErr
}

// resolveSecrets runs phase 2 in place over a tree made by interpolate, copying
// every node it changes (shared nodes hold no references).
func (l *loader) resolveSecrets(n *yaml.Node) bool {
	ok := true
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		for i, ch := range n.Content {
			switch ch.Kind {
			case yaml.ScalarNode:
				if !strings.Contains(ch.Value, "${") && !strings.Contains(ch.Value, "$${") {
					continue
				}
				v, err := l.sec.resolve(ch.Value)
				if err != nil {
					l.errf(l.pos(ch), "%v", err)
					ok = false
					continue
				}
				if v != ch.Value || strings.Contains(v, "$${") {
					c := *ch
					c.Value = unescape(v)
					n.Content[i] = &c
				}
			default:
				walk(ch)
			}
		}
	}
	walk(n)
	return ok
}

// section entries.

var metaKeys = map[string]bool{"name": true, "depends_on": true, "foreach": true}

func (l *loader) parseSection(section string, n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		l.errf(l.pos(n), "%s: want a mapping with items (and optional defaults)", section)
		return
	}
	var defaults, items *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "defaults":
			if v.Kind != yaml.MappingNode {
				l.errf(l.pos(v), "%s.defaults: want a mapping", section)
				continue
			}
			defaults = v
		case "items":
			items = v
		default:
			l.errf(l.pos(k), "%s: unknown key %q (known: defaults, items)", section, k.Value)
		}
	}
	if items == nil {
		l.errf(l.pos(n), "%s.items: required", section)
		return
	}
	if items.Kind != yaml.SequenceNode {
		l.errf(l.pos(items), "%s.items: want a list of entries", section)
		return
	}
	if defaults != nil {
		for i := 0; i+1 < len(defaults.Content); i += 2 {
			if k := defaults.Content[i]; metaKeys[k.Value] {
				l.errf(l.pos(k), "%s.defaults: %q cannot have a default", section, k.Value)
			}
		}
	}
	for idx, e := range items.Content {
		l.parseEntry(section, idx, e, defaults)
	}
}

func (l *loader) parseEntry(section string, idx int, e *yaml.Node, defaults *yaml.Node) {
	where := fmt.Sprintf("%s.items[%d]", section, idx)
	if e.Kind != yaml.MappingNode {
		l.errf(l.pos(e), "%s: want a mapping with a name", where)
		return
	}
	var nameNode, depsNode, foreachNode *yaml.Node
	fields := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: e.Line, Column: e.Column}
	seen := map[string]bool{}
	for i := 0; i+1 < len(e.Content); i += 2 {
		k, v := e.Content[i], e.Content[i+1]
		if seen[k.Value] {
			l.errf(l.pos(k), "%s: duplicate key %q", where, k.Value)
			continue
		}
		seen[k.Value] = true
		switch k.Value {
		case "name":
			nameNode = v
		case "depends_on":
			depsNode = v
		case "foreach":
			foreachNode = v
		default:
			fields.Content = append(fields.Content, k, v)
		}
	}
	if nameNode == nil || nameNode.Kind != yaml.ScalarNode || nameNode.Value == "" {
		l.errf(l.pos(e), "%s: name: required", where)
		return
	}
	if defaults != nil {
		fields = merge(defaults, fields)
	}
	var deps []depRef
	if depsNode != nil {
		switch depsNode.Kind {
		case yaml.ScalarNode:
			deps = append(deps, depRef{depsNode.Value, l.pos(depsNode)})
		case yaml.SequenceNode:
			for _, d := range depsNode.Content {
				if d.Kind != yaml.ScalarNode || d.Value == "" {
					l.errf(l.pos(d), "%s.depends_on: want item names", where)
					continue
				}
				deps = append(deps, depRef{d.Value, l.pos(d)})
			}
		default:
			l.errf(l.pos(depsNode), "%s.depends_on: want a list of item names", where)
		}
	}
	rows := []row{{}}
	if foreachNode != nil {
		var ok bool
		rows, ok = l.foreach(where, foreachNode)
		if !ok {
			return
		}
	}
	if len(l.p.Items)+len(rows) > l.o.MaxItems {
		l.errf(l.pos(e), "%s: expansion would make the plan hold %d items, more than the limit of %d", where, len(l.p.Items)+len(rows), l.o.MaxItems)
		return
	}
	entryPos := l.pos(e)
	hasSecretsOrRefs := treeHas(fields, "${")
	hasEscapes := treeHas(fields, "$${")
	for _, r := range rows {
		sc := &scope{vars: l.p.Vars, rows: r.values, allowOutputs: true, allowSecrets: true}
		nameSc := &scope{vars: l.p.Vars, rows: r.values}
		name, _, err := nameSc.expand(nameNode.Value, l.pos(nameNode))
		if err != nil {
			l.errf(l.pos(nameNode), "%s.name: %v", where, err)
			return // the same error would repeat for every row
		}
		if !itemNameRE.MatchString(name) {
			l.errf(l.pos(nameNode), "%s.name: %q: want 1-200 letters, digits or . _ @ / : + -", where, name)
			continue
		}
		if prev, dup := l.names[name]; dup {
			l.errf(l.pos(nameNode), "%s: duplicate item name %q (first at %s)", where, name, prev)
			continue
		}
		l.names[name] = l.pos(nameNode)
		it := &Item{Section: section, Name: name, Pos: entryPos, Origin: r.origin}
		f := fields
		var fd found
		if hasSecretsOrRefs {
			var err error
			f, fd, err = l.interpolate(fields, sc, where)
			if err != nil {
				return
			}
		}
		it.Hash = hashItem(section, name, f)
		if fd.secrets || hasEscapes {
			f = cloneShallowTree(f)
			if !l.resolveSecrets(f) {
				return
			}
		}
		it.Fields = f
		it.Refs = fd.refs
		var idd []depRef
		for _, d := range deps {
			v, _, err := nameSc.expand(d.pattern, d.pos)
			if err != nil {
				l.errf(d.pos, "%s.depends_on: %v", where, err)
				continue
			}
			idd = append(idd, depRef{v, d.pos})
		}
		if len(idd) > 0 || len(it.Refs) > 0 {
			l.pending = append(l.pending, pendingDeps{item: it, deps: idd})
		}
		l.p.Items = append(l.p.Items, it)
	}
}

// cloneShallowTree copies the container nodes of a tree so phase 2 can replace
// scalars without touching nodes shared with other items.
func cloneShallowTree(n *yaml.Node) *yaml.Node {
	c := *n
	if len(n.Content) > 0 {
		c.Content = make([]*yaml.Node, len(n.Content))
		for i, ch := range n.Content {
			if ch.Kind == yaml.ScalarNode {
				c.Content[i] = ch
			} else {
				c.Content[i] = cloneShallowTree(ch)
			}
		}
	}
	return &c
}

func treeHas(n *yaml.Node, s string) bool {
	if n.Kind == yaml.ScalarNode {
		return strings.Contains(n.Value, s)
	}
	if n.Kind == yaml.AliasNode {
		return true
	}
	for _, c := range n.Content {
		if treeHas(c, s) {
			return true
		}
	}
	return false
}

// merge deep-merges over onto base: mappings key by key, anything else replaced.
func merge(base, over *yaml.Node) *yaml.Node {
	if base.Kind != yaml.MappingNode || over.Kind != yaml.MappingNode {
		return over
	}
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: over.Line, Column: over.Column}
	idx := map[string]int{}
	for i := 0; i+1 < len(base.Content); i += 2 {
		idx[base.Content[i].Value] = len(out.Content)
		out.Content = append(out.Content, base.Content[i], base.Content[i+1])
	}
	for i := 0; i+1 < len(over.Content); i += 2 {
		k, v := over.Content[i], over.Content[i+1]
		if j, ok := idx[k.Value]; ok {
			out.Content[j] = k
			out.Content[j+1] = merge(out.Content[j+1], v)
			continue
		}
		out.Content = append(out.Content, k, v)
	}
	return out
}

// hashItem hashes the item's spec canonically: mapping keys sorted, node kinds
// tagged, secret references as their text.
func hashItem(section, name string, n *yaml.Node) [32]byte {
	h := sha256.New()
	var buf []byte
	buf = append(buf, section...)
	buf = append(buf, 0)
	buf = append(buf, name...)
	buf = append(buf, 0)
	buf = canon(buf, n)
	h.Write(buf)
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

func canon(b []byte, n *yaml.Node) []byte {
	if n == nil {
		return append(b, 'n')
	}
	switch n.Kind {
	case yaml.ScalarNode:
		b = append(b, 's')
		b = strconv.AppendInt(b, int64(len(n.Value)), 10)
		b = append(b, ':')
		return append(b, n.Value...)
	case yaml.SequenceNode:
		b = append(b, '[')
		for _, c := range n.Content {
			b = canon(b, c)
		}
		return append(b, ']')
	case yaml.MappingNode:
		type kv struct{ k, v *yaml.Node }
		pairs := make([]kv, 0, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			pairs = append(pairs, kv{n.Content[i], n.Content[i+1]})
		}
		sort.Slice(pairs, func(i, j int) bool { return pairs[i].k.Value < pairs[j].k.Value })
		b = append(b, '{')
		for _, p := range pairs {
			b = canon(b, p.k)
			b = canon(b, p.v)
		}
		return append(b, '}')
	case yaml.AliasNode:
		return canon(b, n.Alias)
	case yaml.DocumentNode:
		for _, c := range n.Content {
			b = canon(b, c)
		}
	}
	return b
}

// resolveDeps turns depends_on patterns into item names and checks output refs.
func (l *loader) resolveDeps() {
	var all []string
	for _, it := range l.p.Items {
		all = append(all, it.Name)
	}
	for _, pd := range l.pending {
		set := map[string]bool{}
		for _, d := range pd.deps {
			if strings.ContainsAny(d.pattern, "*?[") {
				n := 0
				for _, name := range all {
					if ok, _ := path.Match(d.pattern, name); ok && name != pd.item.Name {
						set[name] = true
						n++
					}
				}
				if n == 0 {
					l.errf(d.pos, "%s: depends_on %q matches no item", pd.item.Name, d.pattern)
				}
				continue
			}
			if d.pattern == pd.item.Name {
				l.errf(d.pos, "%s: depends_on names the item itself", pd.item.Name)
				continue
			}
			if _, ok := l.names[d.pattern]; !ok {
				l.errf(d.pos, "%s: depends_on %q: no such item", pd.item.Name, d.pattern)
				continue
			}
			set[d.pattern] = true
		}
		for _, r := range pd.item.Refs {
			if _, ok := l.names[r.Item]; !ok {
				l.errf(r.Pos, "%s: ${outputs.%s.%s}: no item named %q", pd.item.Name, r.Item, r.Key, r.Item)
			}
		}
		pd.item.DependsOn = sortedKeys(set)
	}
}

func sortErrors(errs []error) error {
	type keyed struct {
		pos Pos
		err error
		txt string
	}
	ks := make([]keyed, 0, len(errs))
	seen := map[string]bool{}
	for _, e := range errs {
		for _, f := range flatten(e) {
			t := f.Error()
			if seen[t] {
				continue
			}
			seen[t] = true
			var pe *PosError
			var p Pos
			if errors.As(f, &pe) {
				p = pe.Pos
			}
			ks = append(ks, keyed{p, f, t})
		}
	}
	sort.SliceStable(ks, func(i, j int) bool {
		a, b := ks[i].pos, ks[j].pos
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	out := make([]error, len(ks))
	for i, k := range ks {
		out[i] = k.err
	}
	return errors.Join(out...)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

func contains(l []string, s string) bool {
	for _, e := range l {
		if e == s {
			return true
		}
	}
	return false
}
