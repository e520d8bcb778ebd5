package plan

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// LoadOptions tune Load and Parse.
type LoadOptions struct {
	// Sections are the item sections the plan may use (from the provider registry).
	Sections []string
	// EndpointKinds are the endpoint kinds the plan may use and the auth keys each
	// accepts (from the provider registry); error messages list them in this order.
	EndpointKinds []EndpointKind
	// Vars override plan vars (--var NAME=VALUE); values are taken literally.
	// Overriding a var the plan does not declare is an error.
	Vars map[string]string
	// Getenv resolves ${env.X}; nil means os.LookupEnv.
	Getenv func(string) (string, bool)
	// Secrets says whether secret references are read (ReadSecrets, the default)
	// or only checked (CheckSecrets).
	Secrets SecretMode
	// MaxItems caps the expanded plan; 0 means DefaultMaxItems.
	MaxItems int
}

// Limits on input sizes.
const (
	DefaultMaxItems = 500_000
	MaxPlanBytes    = 16 << 20
	MaxCABytes      = 16 << 20
	// maxExpandedNodes caps what YAML aliases may expand a plan to.
	maxExpandedNodes = 4_000_000
)

// Load reads and expands the plan at path. Plans larger than MaxPlanBytes are refused
// before parsing. All problems are returned at once (see Parse).
func Load(path string, o LoadOptions) (*Plan, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, Where(Pos{File: path}, bareErr(err))
	}
	if fi.IsDir() {
		return nil, Where(Pos{File: path}, errors.New("is a directory, not a plan file"))
	}
	if fi.Mode().IsRegular() && fi.Size() > MaxPlanBytes {
		return nil, tooBig(path, fi.Size())
	}
	data, err := readCapped("", path, MaxPlanBytes)
	if err != nil {
		return nil, Where(Pos{File: path}, err)
	}
	return Parse(path, data, o)
}

func tooBig(file string, size int64) error {
	return Where(Pos{File: file}, fmt.Errorf("the plan has %d bytes, more than the %s a plan may have: list large fleets in a CSV file and use foreach", size, sizeText(MaxPlanBytes)))
}

// loader holds the state of one Parse.
type loader struct {
	file string
	dir  string
	o    LoadOptions
	p    *Plan
	sec  *secretResolver
	pol  *secretPolicy

	sections    map[string]bool
	kinds       *endpointKinds
	declared    []string // var names, sorted
	names       map[string]nameInfo
	namesRoom   int  // items names can hold without growing (see reserveNames)
	brokenNames bool // an entry could not be expanded: its names are unknown
	pending     []pendingDeps
	csvCache    map[string]csvCached
	arena       arena
	hbuf        []byte

	errs    []error
	seen    map[string]bool
	perPos  map[Pos]int
	dropped map[Pos]int
}

func (l *loader) pos(n *yaml.Node) Pos { return NodePos(l.file, n) }

// Parse reads a plan from data. file names the plan in errors, and its directory is
// the base of relative paths (CSV files, ${file.P}, tls.ca_file).
//
// Every problem is reported: the error joins (errors.Join) *PosError values sorted by
// position. Parsing stops early only at a YAML syntax error. No error text holds a
// secret value.
func Parse(file string, data []byte, o LoadOptions) (*Plan, error) {
	if len(data) > MaxPlanBytes {
		return nil, tooBig(file, int64(len(data)))
	}
	if o.Getenv == nil {
		o.Getenv = os.LookupEnv
	}
	if o.MaxItems <= 0 {
		o.MaxItems = DefaultMaxItems
	}
	dir := filepath.Dir(file)
	red := NewRedactor()
	l := &loader{
		file: file, dir: dir, o: o,
		p:        &Plan{File: file, Dir: dir, Vars: map[string]string{}, Endpoints: map[string]*Endpoint{}, Redactor: red},
		sec:      &secretResolver{dir: dir, getenv: o.Getenv, red: red, checkOnly: o.Secrets == CheckSecrets},
		pol:      &secretPolicy{origins: map[Pos]valueOrigin{}, red: red},
		sections: map[string]bool{}, names: map[string]nameInfo{},
		seen: map[string]bool{}, perPos: map[Pos]int{}, dropped: map[Pos]int{},
	}
	for _, s := range o.Sections {
		l.sections[s] = true
	}
	kinds, err := newEndpointKinds(o.EndpointKinds)
	if err != nil {
		return nil, err
	}
	l.kinds = kinds
	if err := checkUTF8(file, data); err != nil {
		return nil, err
	}
	root, err := parseYAML(file, data)
	if err != nil {
		return nil, err
	}
	if root.Kind != yaml.MappingNode {
		return nil, Where(l.pos(root), errors.New("a plan is a mapping with version, name, vars, endpoints and item sections"))
	}
	root = l.normalize(root)
	if len(l.errs) == 0 {
		l.parseRoot(root)
		l.resolveDeps()
	}
	if err := l.result(); err != nil {
		return nil, err
	}
	return l.p, nil
}

// parseYAML reads exactly one YAML document.
func parseYAML(file string, data []byte) (root *yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			root, err = nil, Where(Pos{File: file}, fmt.Errorf("yaml: cannot parse: %v", r))
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return nil, Where(Pos{File: file}, errors.New("the plan is empty"))
		}
		return nil, syntaxError(file, err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, Where(NodePos(file, &extra), errors.New("the plan holds more than one YAML document (remove the ---)"))
	case err != io.EOF:
		return nil, syntaxError(file, err)
	}
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return nil, Where(Pos{File: file}, errors.New("the plan is empty"))
		}
		return doc.Content[0], nil
	}
	return &doc, nil
}

// syntaxError turns "yaml: line 5: did not find ..." into a PosError.
func syntaxError(file string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, text, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				return Where(Pos{File: file, Line: n}, errors.New("yaml: "+text))
			}
		}
	}
	return Where(Pos{File: file}, errors.New("yaml: "+msg))
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
				known := append([]string{"version", "name", "vars", "endpoints"}, sortedCopy(l.o.Sections)...)
				l.errf(l.pos(k), "unknown top-level key %q (known: %s)", k.Value, strings.Join(known, ", "))
				continue
			}
			sections = append(sections, sectionNode{k, v})
		}
	}
	rootPos := l.pos(root)
	switch {
	case versionNode == nil:
		l.errf(rootPos, "version: required (version: 1)")
	case versionNode.Kind == yaml.ScalarNode && versionNode.Value == "1" && versionNode.ShortTag() != "!!int":
		l.errf(l.pos(versionNode), "version: want the number 1, not the string %s", show(versionNode))
	case versionNode.Kind != yaml.ScalarNode || versionNode.ShortTag() != "!!int" || versionNode.Value != "1":
		l.errf(l.pos(versionNode), "version: %s is not supported (want 1)", show(versionNode))
	default:
		l.p.Version = 1
	}
	switch {
	case nameNode == nil:
		l.errf(rootPos, "name: required (it names the state file)")
	case nameNode.Kind != yaml.ScalarNode || !validPlanName(nameNode.Value):
		l.errf(l.pos(nameNode), "name: %s: want 1-100 letters, digits, '.', '_' or '-'", show(nameNode))
	default:
		l.p.Name = nameNode.Value
	}
	l.parseVars(varsNode)
	l.parseEndpoints(epNode)
	for _, s := range sections {
		l.parseSection(s.key.Value, s.val)
	}
}

// show quotes a node's value for an error message, unless it is secret or not a scalar.
func show(n *yaml.Node) string {
	switch {
	case n == nil:
		return "nothing"
	case n.Tag == SecretTag:
		return "(a secret value, not shown)"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind != yaml.ScalarNode:
		return "a value"
	}
	return strconv.Quote(clip(n.Value))
}

func validPlanName(s string) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func (l *loader) parseVars(n *yaml.Node) {
	declared := map[string]bool{}
	if n != nil && n.Kind != yaml.MappingNode && n.ShortTag() != nullTag {
		l.errf(l.pos(n), "vars: want a mapping of names to values")
	} else if n != nil {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if !isIdent(k.Value) {
				l.errf(l.pos(k), "vars: name %q: want letters, digits, '_' or '-'", k.Value)
				continue
			}
			if declared[k.Value] {
				l.errf(l.pos(k), "vars: duplicate var %q", k.Value)
				continue
			}
			declared[k.Value] = true
			if v.Kind != yaml.ScalarNode {
				l.errf(l.pos(v), "vars.%s: want a single value, not %s", k.Value, show(v))
				continue
			}
			segs, err := parseRefs(v.Value)
			if err != nil {
				l.errf(l.pos(v), "vars.%s: %v", k.Value, err)
				continue
			}
			var b strings.Builder
			bad := false
			for _, s := range segs {
				if s.ref {
					l.errf(l.pos(v), "vars.%s: %s: vars hold plain values, references are not expanded in them (a literal \"${\" is written \"$${\")", k.Value, clip(s.text))
					bad = true
					break
				}
				b.WriteString(s.lit)
			}
			if bad {
				continue
			}
			if v.ShortTag() != nullTag {
				l.p.Vars[k.Value] = b.String()
			} else {
				l.p.Vars[k.Value] = ""
			}
		}
	}
	l.declared = sortedKeys(declared)
	for _, k := range sortedKeys(l.o.Vars) {
		if !declared[k] {
			l.errf(Pos{File: l.file}, "--var %s: the plan declares no var %s%s", k, k, l.declaredVars())
			continue
		}
		l.p.Vars[k] = l.o.Vars[k]
	}
}

func (l *loader) declaredVars() string {
	if len(l.declared) == 0 {
		return " (it declares none)"
	}
	return " (declared: " + strings.Join(l.declared, ", ") + ")"
}

func (l *loader) parseEndpoints(n *yaml.Node) {
	if n == nil || n.ShortTag() == nullTag {
		return
	}
	if n.Kind != yaml.MappingNode {
		l.errf(l.pos(n), "endpoints: want a mapping of endpoint names to endpoints")
		return
	}
	sc := &scope{l: l, secrets: true, where: "endpoints"}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := k.Value
		if !isIdent(name) {
			l.errf(l.pos(k), "endpoints: name %q: want 1-64 letters, digits, '_' or '-'", name)
			continue
		}
		if _, dup := l.p.Endpoints[name]; dup {
			l.errf(l.pos(k), "endpoints: duplicate endpoint %q", name)
			continue
		}
		where := "endpoints." + name
		if v.Kind != yaml.MappingNode {
			l.errf(l.pos(v), "%s: want a mapping with kind, url, auth, tls, limits and timeout", where)
			continue
		}
		node, ok := l.instantiateOnce(v, sc, where)
		if !ok {
			continue
		}
		ep, err := l.decodeEndpoint(name, k, node)
		if err != nil {
			l.report(prefixErrors(where, err)...)
			continue
		}
		l.checkEndpoint(ep, node, where)
		l.p.Endpoints[name] = ep
		l.p.EndpointOrder = append(l.p.EndpointOrder, name)
	}
}

// at returns the node at a path of mapping keys under n, or the deepest one found.
func at(n *yaml.Node, keys ...string) *yaml.Node {
	for _, k := range keys {
		next := valueOf(n, k)
		if next == n {
			return n
		}
		n = next
	}
	return n
}

func (l *loader) checkEndpoint(ep *Endpoint, n *yaml.Node, where string) {
	p := func(keys ...string) Pos { return l.pos(at(n, keys...)) }
	switch {
	case ep.Kind == "":
		l.errf(ep.Pos, "%s.kind: required (one of %s)", where, l.kinds.known())
	case l.kinds.shapes[ep.Kind] == nil:
		l.errf(p("kind"), "%s.kind: %s is not one of %s", where, show(at(n, "kind")), l.kinds.known())
	}
	if ep.URL == "" {
		l.errf(ep.Pos, "%s.url: required", where)
	} else if u, err := url.Parse(ep.URL); err == nil && u.User != nil {
		l.errf(p("url"), "%s.url: the URL holds credentials (user:password@): put them in auth", where) // not shown: it holds a password
	} else if err := checkBaseURL(ep.URL); err != nil {
		l.errf(p("url"), "%s.url: %s %v", where, show(at(n, "url")), err)
	}
	// Secret references were registered when resolved, literals are refused by the
	// decoder; the pair of a Basic header is registered here.
	if ep.Auth.Username != "" {
		l.p.Redactor.AddCredentials(ep.Auth.Username, ep.Auth.Password.Reveal())
	}
	t := &ep.TLS
	if t.Insecure && (t.CAFile != "" || t.Fingerprint != "") {
		l.errf(p("tls", "insecure"), "%s.tls: conflicting TLS options: insecure: true turns verification off, ca_file and fingerprint_sha256 pin it", where)
	}
	unread := func(path ...string) bool { // a secret value not read (CheckSecrets): nothing to check
		return l.o.Secrets == CheckSecrets && at(n, path...).Tag == SecretTag
	}
	if t.Fingerprint != "" && !unread("tls", "fingerprint_sha256") {
		fp, err := NormalizeFingerprint(t.Fingerprint)
		if err != nil {
			if fn := at(n, "tls", "fingerprint_sha256"); fn.Tag == SecretTag {
				l.errf(l.pos(fn), "%s.tls.fingerprint_sha256: the value (a secret, not shown) is not a SHA-256 fingerprint", where)
			} else {
				l.errf(l.pos(fn), "%s.tls.fingerprint_sha256: %s is not a SHA-256 fingerprint: %v", where, show(fn), err)
			}
		}
		t.Fingerprint = fp
	}
	if t.CAFile != "" && !unread("tls", "ca_file") {
		pem, err := ReadCAFile(l.dir, t.CAFile)
		if err != nil {
			if cn := at(n, "tls", "ca_file"); cn.Tag == SecretTag {
				l.errf(l.pos(cn), "%s.tls.ca_file: cannot read the file (its name is a secret, not shown)", where)
			} else {
				l.errf(l.pos(cn), "%s.tls.ca_file: %v", where, err)
			}
		}
		t.CAPEM = pem
	}
	lim := ep.Limits
	if lim.Concurrency < 0 {
		l.errf(p("limits", "concurrency"), "%s.limits.concurrency: %d: want 0 (no cap) or more", where, lim.Concurrency)
	}
	if lim.RatePerSecond < 0 || math.IsNaN(lim.RatePerSecond) || math.IsInf(lim.RatePerSecond, 0) {
		l.errf(p("limits", "rate_per_second"), "%s.limits.rate_per_second: %v: want 0 (unlimited) or more", where, lim.RatePerSecond)
	}
	if lim.Burst < 0 {
		l.errf(p("limits", "burst"), "%s.limits.burst: %d: want 0 (automatic) or more", where, lim.Burst)
	}
	if lim.MaxRetryAfter.D() < 0 {
		l.errf(p("limits", "max_retry_after"), "%s.limits.max_retry_after: %s: want 0 (the default, 30s) or more", where, lim.MaxRetryAfter.D())
	}
}

func checkBaseURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return errors.New("is not an absolute http(s) URL")
	case u.RawQuery != "" || u.Fragment != "":
		return errors.New("has a query or a fragment: want a base URL, maybe with a path prefix")
	}
	return nil
}

// NormalizeFingerprint turns a SHA-256 fingerprint written "AB:CD:..." (colons or
// spaces optional, any case) into 64 lower-case hex digits.
func NormalizeFingerprint(s string) (string, error) {
	h := strings.ToLower(strings.NewReplacer(":", "", " ", "").Replace(strings.TrimSpace(s)))
	for _, c := range h {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", fmt.Errorf("%q is not a hex digit", c)
		}
	}
	if len(h) != 64 {
		return "", fmt.Errorf("want 64 hex digits (colons optional), got %d", len(h))
	}
	return h, nil
}

// ReadCAFile reads a PEM bundle (relative to dir) and checks that it holds at least
// one certificate.
func ReadCAFile(dir, name string) ([]byte, error) {
	b, err := readCapped(dir, name, MaxCABytes)
	if err != nil {
		return nil, err
	}
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", name)
	}
	return b, nil
}

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
			if defaults != nil {
				l.errf(l.pos(k), "%s: duplicate key %q", section, k.Value)
				continue
			}
			if v.Kind != yaml.MappingNode {
				l.errf(l.pos(v), "%s.defaults: want a mapping of fields", section)
				l.brokenNames = true // the entries are not expanded: their names are unknown
				continue
			}
			defaults = v
		case "items":
			if items != nil {
				l.errf(l.pos(k), "%s: duplicate key %q", section, k.Value)
				continue
			}
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
		l.brokenNames = true
		return
	}
	if defaults != nil {
		bad := false
		for i := 0; i+1 < len(defaults.Content); i += 2 {
			if k := defaults.Content[i]; metaKeys[k.Value] {
				l.errf(l.pos(k), "%s.defaults.%s: each entry has its own %s, it cannot have a default", section, k.Value, k.Value)
				bad = true
			}
		}
		if bad {
			l.brokenNames = true
			return
		}
	}
	for idx, e := range items.Content {
		l.entry(section, idx, e, defaults)
	}
}

// normalize resolves YAML aliases and merge keys ("<<: *base") so that the rest of the
// loader sees plain trees. Aliased nodes are shared, not copied; the expanded size is
// checked first, so that a "billion laughs" document is refused quickly.
func (l *loader) normalize(root *yaml.Node) *yaml.Node {
	if !hasAliasOrMerge(root) {
		return root
	}
	z := &normalizer{l: l, memo: map[*yaml.Node]*yaml.Node{}, busy: map[*yaml.Node]bool{}, sizes: map[*yaml.Node]float64{}}
	if n := z.size(root); n > maxExpandedNodes {
		l.errf(l.pos(root), "yaml: aliases expand the plan to more than %d nodes", maxExpandedNodes)
		return root
	}
	if len(l.errs) > 0 {
		return root
	}
	return z.node(root)
}

func hasAliasOrMerge(n *yaml.Node) bool {
	if n.Kind == yaml.AliasNode || n.Kind == yaml.ScalarNode && n.Tag == "!!merge" {
		return true
	}
	for _, c := range n.Content {
		if hasAliasOrMerge(c) {
			return true
		}
	}
	return false
}

type normalizer struct {
	l     *loader
	memo  map[*yaml.Node]*yaml.Node
	busy  map[*yaml.Node]bool
	sizes map[*yaml.Node]float64
}

// size is the number of nodes n stands for once aliases are expanded.
func (z *normalizer) size(n *yaml.Node) float64 {
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return 1
		}
		n = n.Alias
	}
	if s, ok := z.sizes[n]; ok {
		return s
	}
	if z.busy[n] {
		z.l.errf(z.l.pos(n), "yaml: an alias refers to a node that contains it")
		return math.Inf(1)
	}
	z.busy[n] = true
	s := 1.0
	for _, c := range n.Content {
		s += z.size(c)
		if s > maxExpandedNodes {
			break
		}
	}
	delete(z.busy, n)
	z.sizes[n] = s
	return s
}

func (z *normalizer) node(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			z.l.errf(z.l.pos(n), "yaml: alias to an unknown anchor")
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: nullTag, Line: n.Line, Column: n.Column}
		}
		return z.node(n.Alias)
	}
	if r, ok := z.memo[n]; ok {
		return r
	}
	n.Anchor = ""
	if len(n.Content) == 0 {
		return n
	}
	out := n
	content := make([]*yaml.Node, 0, len(n.Content))
	changed := false
	var merges []*yaml.Node
	for i, c := range n.Content {
		if n.Kind == yaml.MappingNode && i%2 == 0 && c.Kind == yaml.ScalarNode && c.Tag == "!!merge" && i+1 < len(n.Content) {
			merges = append(merges, c)
			changed = true
			continue
		}
		if n.Kind == yaml.MappingNode && i%2 == 1 && n.Content[i-1].Tag == "!!merge" && n.Content[i-1].Kind == yaml.ScalarNode {
			continue
		}
		nc := z.node(c)
		changed = changed || nc != c
		content = append(content, nc)
	}
	if len(merges) > 0 {
		present := map[string]bool{}
		for i := 0; i+1 < len(content); i += 2 {
			present[content[i].Value] = true
		}
		add := func(m *yaml.Node, key *yaml.Node) {
			if m.Kind != yaml.MappingNode {
				z.l.errf(z.l.pos(key), "yaml: <<: want a mapping or a list of mappings to merge")
				return
			}
			for i := 0; i+1 < len(m.Content); i += 2 {
				if !present[m.Content[i].Value] {
					present[m.Content[i].Value] = true
					content = append(content, m.Content[i], m.Content[i+1])
				}
			}
		}
		for _, k := range merges {
			var v *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i] == k {
					v = n.Content[i+1]
				}
			}
			v = z.node(v)
			if v.Kind == yaml.SequenceNode {
				for _, m := range v.Content {
					add(m, k)
				}
			} else {
				add(v, k)
			}
		}
	}
	if changed {
		c := *n
		c.Content = content
		out = &c
	}
	z.memo[n] = out
	return out
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
