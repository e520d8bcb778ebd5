package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Interpolation of scalar values. A scalar is parsed once into segments (rawSeg), then
// bound to a scope (seg): ${var.X} folds into text, ${env.X} and ${file.P} are resolved
// once (cached), ${outputs.I.K} is kept, and ${<as>.COL} points at a column of a
// foreach source. A scalar without row references is evaluated once per entry; the
// others once per row, without re-parsing.
//
// Each evaluation yields two texts: the final value (secrets resolved) and the hash
// text (secret references kept as written, literal "${" escaped), so that an item's
// hash never depends on a secret value.

// Limits on secret files and reference nesting.
const (
	MaxSecretFileBytes = 1 << 20
	maxRefDepth        = 8
)

// rawSeg is a parsed piece of a scalar: literal text (escapes removed) or a reference.
type rawSeg struct {
	lit  string
	ref  bool
	body []rawSeg // reference body: "var.x", "outputs.", ref, ".id", ...
	text string   // the reference as written, for messages
}

// parseRefs splits s into literal text and ${...} references. "$${" is a literal "${".
func parseRefs(s string) ([]rawSeg, error) { return parseRefsDepth(s, 0) }

func parseRefsDepth(s string, depth int) ([]rawSeg, error) {
	if depth > maxRefDepth {
		return nil, errors.New("references nested too deeply")
	}
	var out []rawSeg
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			out = append(out, rawSeg{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); {
		j := strings.IndexByte(s[i:], '$')
		if j < 0 {
			lit.WriteString(s[i:])
			break
		}
		j += i
		lit.WriteString(s[i:j])
		switch {
		case strings.HasPrefix(s[j:], "$${"):
			lit.WriteString("${")
			i = j + 3
		case strings.HasPrefix(s[j:], "${"):
			end := matchBrace(s, j+2)
			if end < 0 {
				return nil, fmt.Errorf("unterminated reference %q (a literal \"${\" is written \"$${\")", clip(s[j:]))
			}
			body, err := parseRefsDepth(s[j+2:end], depth+1)
			if err != nil {
				return nil, err
			}
			flush()
			out = append(out, rawSeg{ref: true, body: body, text: s[j : end+1]})
			i = end + 1
		default:
			lit.WriteByte('$')
			i = j + 1
		}
	}
	flush()
	return out, nil
}

// matchBrace returns the index of the "}" that closes a reference whose body starts at
// i, or -1.
func matchBrace(s string, i int) int {
	depth := 0
	for k := i; k < len(s); k++ {
		switch s[k] {
		case '$':
			if strings.HasPrefix(s[k:], "$${") {
				k += 2
			} else if k+1 < len(s) && s[k+1] == '{' {
				depth++
				k++
			}
		case '}':
			if depth == 0 {
				return k
			}
			depth--
		}
	}
	return -1
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// hasRefSyntax reports whether s may hold a reference or an escape.
func hasRefSyntax(s string) bool { return strings.Contains(s, "${") }

// escapeRefs turns "${" into "$${" (hash texts, and values placed next to output refs).
func escapeRefs(s string) string {
	if !strings.Contains(s, "${") {
		return s
	}
	return strings.ReplaceAll(s, "${", "$${")
}

type segKind uint8

const (
	segLit    segKind = iota // text
	segRow                   // a column of a foreach source
	segSecret                // a resolved secret; hsh holds the reference as written
	segOutput                // ${outputs.ITEM.KEY}, kept for run time
	segDyn                   // a reference whose name holds row references
)

// seg is a bound segment.
type seg struct {
	kind     segKind
	text     string // lit: text; secret: value; output: item
	hsh      string // secret: reference text; output: key
	src, col int    // row
	ns       string // dyn: namespace
	body     []seg  // dyn: the name after the namespace
	raw      string // dyn: the reference as written
}

// scalarT is a compiled scalar.
type scalarT struct {
	segs    []seg
	whole   bool     // the scalar is exactly one reference
	rowDep  bool     // depends on the row
	secret  bool     // holds a secret (statically known)
	vars    []string // vars it names (secret fields refuse --var values)
	keepEsc bool     // holds an output reference: "${" in data stays escaped until run time
	refs    []Ref
}

// scope says what references may resolve to where a scalar is compiled.
type scope struct {
	l       *loader
	srcs    []*source
	secrets bool   // ${env.X} and ${file.P} allowed
	outputs bool   // ${outputs.I.K} allowed
	where   string // "item names", "depends_on", ... for messages about what is not allowed
}

// compileScalar parses and binds s. pos is the position of the scalar (for Refs).
func (sc *scope) compileScalar(s string, pos Pos) (*scalarT, error) {
	raw, err := parseRefs(s)
	if err != nil {
		return nil, err
	}
	t := &scalarT{whole: len(raw) == 1 && raw[0].ref}
	segs, err := sc.bind(raw, t, pos, 0)
	if err != nil {
		return nil, err
	}
	t.segs = mergeLits(segs)
	return t, nil
}

func mergeLits(segs []seg) []seg {
	out := segs[:0]
	for _, s := range segs {
		if s.kind == segLit && len(out) > 0 && out[len(out)-1].kind == segLit {
			out[len(out)-1].text += s.text
			continue
		}
		out = append(out, s)
	}
	return out
}

// bind resolves references; depth > 0 inside a reference name.
func (sc *scope) bind(raw []rawSeg, t *scalarT, pos Pos, depth int) ([]seg, error) {
	var out []seg
	for _, r := range raw {
		if !r.ref {
			out = append(out, seg{kind: segLit, text: r.lit})
			continue
		}
		s, err := sc.bindRef(r, t, pos, depth)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func (sc *scope) bindRef(r rawSeg, t *scalarT, pos Pos, depth int) (seg, error) {
	if len(r.body) == 0 || r.body[0].ref || !strings.Contains(r.body[0].lit, ".") {
		return seg{}, fmt.Errorf("reference %s: want ${namespace.name} (namespaces: var, env, file, outputs%s)", clip(r.text), sc.rowNamespaces())
	}
	ns, first, _ := strings.Cut(r.body[0].lit, ".")
	rest := append([]rawSeg{{lit: first}}, r.body[1:]...)
	if first == "" {
		rest = r.body[1:]
	}
	src := -1
	switch ns {
	case "var":
	case "env", "file":
		if depth > 0 {
			return seg{}, fmt.Errorf("reference %s: a secret cannot be part of another reference's name", clip(r.text))
		}
		if !sc.secrets {
			return seg{}, fmt.Errorf("reference %s: secret references are not allowed in %s", clip(r.text), sc.where)
		}
		t.secret = true
	case "outputs":
		if depth > 0 {
			return seg{}, fmt.Errorf("reference %s: an output cannot be part of another reference's name", clip(r.text))
		}
		if !sc.outputs {
			return seg{}, fmt.Errorf("reference %s: output references are not allowed in %s", clip(r.text), sc.where)
		}
		t.keepEsc = true
	default:
		for i, s := range sc.srcs {
			if s.as == ns {
				src = i
			}
		}
		if src < 0 {
			if len(sc.srcs) == 0 && ns == "row" {
				return seg{}, fmt.Errorf("reference %s: row references need a foreach", clip(r.text))
			}
			return seg{}, fmt.Errorf("reference %s: unknown namespace %q (known: var, env, file, outputs%s)", clip(r.text), ns, sc.rowNamespaces())
		}
		t.rowDep = true
	}
	body, err := sc.bind(rest, t, pos, depth+1)
	if err != nil {
		return seg{}, err
	}
	body = mergeLits(body)
	name := ""
	static := true
	for _, b := range body {
		if b.kind != segLit {
			static = false
			break
		}
		name += b.text
	}
	if !static {
		t.rowDep = true
		return seg{kind: segDyn, ns: ns, body: body, src: src, raw: r.text}, nil
	}
	return sc.resolve(ns, name, src, t, pos)
}

func (sc *scope) rowNamespaces() string {
	if len(sc.srcs) == 0 {
		return ""
	}
	var names []string
	for _, s := range sc.srcs {
		names = append(names, s.as)
	}
	return ", or a foreach source: " + strings.Join(names, ", ")
}

// resolve binds a reference whose name is known. t (may be nil) learns refs.
func (sc *scope) resolve(ns, name string, src int, t *scalarT, pos Pos) (seg, error) {
	if name == "" {
		return seg{}, fmt.Errorf("reference ${%s.}: name missing", ns)
	}
	switch ns {
	case "var":
		v, ok := sc.l.p.Vars[name]
		if !ok {
			return seg{}, fmt.Errorf("${var.%s}: the plan declares no var %q%s", name, name, sc.l.declaredVars())
		}
		if t != nil {
			t.vars = append(t.vars, name)
		}
		return seg{kind: segLit, text: v}, nil
	case "env", "file":
		v, err := sc.l.sec.value(ns, name)
		if err != nil {
			return seg{}, err
		}
		return seg{kind: segSecret, text: v, hsh: "${" + ns + "." + name + "}"}, nil
	case "outputs":
		k := strings.LastIndexByte(name, '.')
		if k <= 0 || k == len(name)-1 {
			return seg{}, fmt.Errorf("${outputs.%s}: want ${outputs.ITEM.KEY}", name)
		}
		r := Ref{Item: name[:k], Key: name[k+1:], Pos: pos}
		if t != nil {
			t.refs = append(t.refs, r)
		}
		return seg{kind: segOutput, text: r.Item, hsh: r.Key}, nil
	}
	s := sc.srcs[src]
	col, ok := s.column(name)
	if !ok {
		return seg{}, fmt.Errorf("${%s.%s}: %s", ns, name, s.noColumn(name))
	}
	return seg{kind: segRow, src: src, col: col}, nil
}

// evalOut is the result of evaluating a scalar for one row.
type evalOut struct {
	fin    []byte
	hsh    []byte
	secret bool
	refs   []Ref
}

// eval evaluates t for row rc (nil when t does not depend on the row), appending to o.
func (sc *scope) eval(t *scalarT, rc *rowCtx, pos Pos, o *evalOut) error {
	o.secret = o.secret || t.secret
	for i := range t.segs {
		if err := sc.evalSeg(&t.segs[i], t.keepEsc, rc, pos, o); err != nil {
			return err
		}
	}
	return nil
}

func (sc *scope) evalSeg(s *seg, keepEsc bool, rc *rowCtx, pos Pos, o *evalOut) error {
	switch s.kind {
	case segLit:
		o.appendData(s.text, keepEsc)
	case segRow:
		v, err := rc.value(s.src, s.col)
		if err != nil {
			return err
		}
		o.appendData(v, keepEsc)
	case segSecret:
		o.secret = true
		if keepEsc {
			o.fin = append(o.fin, escapeRefs(s.text)...)
		} else {
			o.fin = append(o.fin, s.text...)
		}
		o.hsh = append(o.hsh, s.hsh...)
	case segOutput:
		n := len(o.fin)
		o.fin = append(o.fin, "${outputs."...)
		o.fin = append(o.fin, s.text...)
		o.fin = append(o.fin, '.')
		o.fin = append(o.fin, s.hsh...)
		o.fin = append(o.fin, '}')
		o.hsh = append(o.hsh, o.fin[n:]...)
	case segDyn:
		var name evalOut
		for i := range s.body {
			if err := sc.evalSeg(&s.body[i], false, rc, pos, &name); err != nil {
				return err
			}
		}
		var t scalarT
		r, err := sc.resolve(s.ns, string(name.fin), s.src, &t, pos)
		if err != nil {
			return fmt.Errorf("%s: %w", clip(s.raw), err)
		}
		if r.kind == segDyn {
			return fmt.Errorf("%s: reference too deep", clip(s.raw))
		}
		o.refs = append(o.refs, t.refs...)
		return sc.evalSeg(&r, keepEsc, rc, pos, o)
	}
	return nil
}

func (o *evalOut) appendData(v string, keepEsc bool) {
	e := escapeRefs(v)
	if keepEsc {
		o.fin = append(o.fin, e...)
	} else {
		o.fin = append(o.fin, v...)
	}
	o.hsh = append(o.hsh, e...)
}

// SecretMode says how a load resolves ${env.X} and ${file.P}.
type SecretMode int

const (
	// ReadSecrets reads every referenced value (plan, apply, destroy).
	ReadSecrets SecretMode = iota
	// CheckSecrets reads no value: each reference must be well formed and
	// resolvable in kind (an environment variable name; a regular file within the
	// size limit, which is looked at but not read), and stands for a placeholder
	// (PlaceholderSecret). An unset variable is fine. For linting (validate,
	// graph) and for commands that only read the state.
	CheckSecrets
)

// PlaceholderSecret is the value that stands for an unread or unset secret
// reference: the same for the same reference in every process, distinct per
// reference, and shaped to pass the vendors' password rules (8-20 characters,
// upper and lower case, a digit).
func PlaceholderSecret(ns, name string) string {
	h := sha256.Sum256([]byte(ns + "." + name))
	return "Ph0-" + hex.EncodeToString(h[:5])
}

// validEnvName: a POSIX shell variable name.
func validEnvName(s string) bool {
	for i, c := range s {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return s != ""
}

// secretResolver reads ${env.X} and ${file.P}, once each.
type secretResolver struct {
	dir       string
	getenv    func(string) (string, bool)
	red       *Redactor
	checkOnly bool // CheckSecrets
	cache     map[string]secretVal
}

type secretVal struct {
	v   string
	err error
}

func (r *secretResolver) value(ns, name string) (string, error) {
	key := ns + "\x00" + name
	if c, ok := r.cache[key]; ok {
		return c.v, c.err
	}
	v, err := r.read(ns, name)
	if err == nil && len(v) < MinSecretLen && v != PublicDefaultPassword {
		err = fmt.Errorf("${%s.%s}: the value has fewer than %d characters: too short for a secret, and too likely to occur in ordinary text to be kept out of logs", ns, name, MinSecretLen)
	}
	switch {
	case err != nil:
		v = ""
	case v != PublicDefaultPassword:
		r.red.Add(v)
	}
	if r.cache == nil {
		r.cache = map[string]secretVal{}
	}
	r.cache[key] = secretVal{v, err}
	return v, err
}

func (r *secretResolver) read(ns, name string) (string, error) {
	if ns == "env" && !validEnvName(name) {
		return "", fmt.Errorf("${env.%s}: %q is not an environment variable name (letters, digits, _; not starting with a digit)", name, name)
	}
	if r.checkOnly {
		if ns == "file" {
			if err := statCapped(r.dir, name, MaxSecretFileBytes); err != nil {
				return "", fmt.Errorf("${file.%s}: %w", name, err)
			}
		}
		return PlaceholderSecret(ns, name), nil
	}
	if ns == "env" {
		v, ok := r.getenv(name)
		if !ok {
			return "", fmt.Errorf("${env.%s}: environment variable %s is not set", name, name)
		}
		if v == "" {
			return "", fmt.Errorf("${env.%s}: environment variable %s is empty", name, name)
		}
		return v, nil
	}
	b, err := readCapped(r.dir, name, MaxSecretFileBytes)
	if err != nil {
		return "", fmt.Errorf("${file.%s}: %w", name, err)
	}
	v := strings.TrimRight(string(b), "\r\n")
	if v == "" {
		return "", fmt.Errorf("${file.%s}: the file is empty", name)
	}
	return v, nil
}

// statCapped checks, without reading it, that a file (relative to dir) exists, is
// a regular file and holds at most max bytes.
func statCapped(dir, name string, max int64) error {
	p := name
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	fi, err := os.Stat(p)
	switch {
	case err != nil:
		return fmt.Errorf("stat %s: %w", name, bareErr(err))
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file", name)
	case fi.Size() > max:
		return fmt.Errorf("%s is larger than %s", name, sizeText(max))
	case fi.Size() == 0:
		return fmt.Errorf("the file is empty")
	}
	return nil
}

// readCapped reads a file (relative to dir) of at most max bytes. Its errors name the
// file as given, never its content.
func readCapped(dir, name string, max int64) ([]byte, error) {
	p := name
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, bareErr(err))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, bareErr(err))
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is larger than %s", name, sizeText(max))
	}
	return b, nil
}

// bareErr drops the path an *os.PathError repeats (it is the joined, absolute one).
func bareErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func sizeText(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return strconv.FormatInt(n>>20, 10) + " MiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}
