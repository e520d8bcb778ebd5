package plan

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// SecretTag is the YAML tag Load puts on every scalar of Item.Fields() that holds a
// resolved secret (${env.X}, ${file.P}). Such a scalar decodes as a string, and
// DecodeStrict never quotes its value in an error.
const SecretTag = "!secret"

// Secret is a string that must never be printed. Its String, GoString and marshalled
// forms are "***"; Reveal returns the value for the one place that sends it.
type Secret struct{ v string }

// NewSecret wraps v.
func NewSecret(v string) Secret { return Secret{v: v} }

// Reveal returns the secret value. Call it only where the value is sent to an API.
func (s Secret) Reveal() string { return s.v }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.v == "" }

func (s Secret) String() string   { return mask(s.v) }
func (s Secret) GoString() string { return mask(s.v) }

// MarshalText keeps secrets out of JSON, YAML and log fields.
func (s Secret) MarshalText() ([]byte, error) { return []byte(mask(s.v)), nil }

// UnmarshalYAML accepts a scalar (already resolved by Load).
func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	var v string
	if err := n.Decode(&v); err != nil {
		return err
	}
	s.v = v
	return nil
}

func mask(v string) string {
	if v == "" {
		return ""
	}
	return "***"
}

// Redactor replaces every known secret value in text with "***". It is safe for
// concurrent use; values can be added while a run goes on (secret outputs).
//
// A secret is masked in every form it travels in: as is, query- and path-escaped
// (upper- and lower-case hex), JSON-escaped (with and without HTML escaping, once
// and twice), and each of these in base64 (standard and URL alphabets, with and
// without padding, alone or inside a longer encoded text). AddCredentials also masks the base64 of
// "user:password" (an HTTP Basic header).
//
// Plain and escaped forms are masked only as whole tokens in value positions: not
// when a letter or digit touches them (so a secret that is a common word leaves
// longer words alone) and not as a JSON object key, so redacted JSON stays valid
// and keeps its keys. Base64 forms are masked wherever they appear.
type Redactor struct {
	mu     sync.RWMutex
	values map[string]struct{}
	forms  []redactForm
	// Forms of 8 bytes or more are found by one 8-byte window each, chosen among a
	// few so that forms with a common start (JWT headers, "nxcdb-") or end spread
	// over many buckets; shorter forms (run-time tokens of 4-7 bytes) by all 4 bytes.
	index8  map[uint64][]formRef
	index4  map[uint32][]int32
	filter8 []uint64 // one bit per hashed window, checked before the map
	filter4 []uint64
	// prefix4 finds forms by their first four bytes, for a secret cut off by "...".
	prefix4 map[uint32][]int32
	maxLen  int
}

// formRef is a form whose window starts off bytes into it.
type formRef struct{ form, off int32 }

type redactForm struct {
	text string
	// token: mask only whole tokens outside JSON keys (plain and escaped forms).
	token bool
}

// NewRedactor returns an empty redactor.
func NewRedactor() *Redactor { return &Redactor{values: map[string]struct{}{}} }

// minSecretLen keeps tiny values ("1", "a") from turning every text into stars.
// Plan secrets are held to MinSecretLen by validation; this floor applies to
// values learnt at run time (tokens, keys).
const minSecretLen = 4

// MinSecretLen is the shortest secret a plan may hold: shorter values are too easy
// to guess and too likely to occur in ordinary text to be masked reliably.
const MinSecretLen = 8

// PublicDefaultPassword is the factory-default admin password of a new Nx server
// ("admin"): public knowledge, not a secret. It may be written literally in a plan
// and is never registered with a redactor.
const PublicDefaultPassword = "admin"

const filterBits = 1 << 20

// Add registers secret values.
func (r *Redactor) Add(values ...string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, v := range values {
		r.addLocked(v)
	}
}

// AddCredentials registers a password and the "user:password" pair, whose base64
// form is an HTTP Basic Authorization header.
func (r *Redactor) AddCredentials(user, password string) {
	if r == nil || len(password) < minSecretLen || password == PublicDefaultPassword {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addLocked(password)
	if user != "" {
		r.addLocked(user + ":" + password)
	}
}

func (r *Redactor) addLocked(v string) {
	if len(v) < minSecretLen {
		return
	}
	if _, ok := r.values[v]; ok {
		return
	}
	if r.values == nil {
		r.values = map[string]struct{}{}
	}
	r.values[v] = struct{}{}
	tokens := []string{v}
	if !plainSecret(v) {
		tokens = append(tokens, url.QueryEscape(v), url.PathEscape(v))
		for _, e := range tokens[1:3] {
			if strings.Contains(e, "%") {
				tokens = append(tokens, lowerHexEscapes(e))
			}
		}
		for _, e := range []string{jsonEscape(v, true), jsonEscape(v, false)} {
			tokens = append(tokens, e, jsonEscape(e, true))
		}
	}
	for i, t := range tokens {
		if slices.Contains(tokens[:i], t) {
			continue
		}
		r.addForm(t, true)
		// A server may also base64 what it got: the secret as sent (escaped in a
		// query, a path or a JSON body) inside an encoded text.
		r.addBase64(t)
	}
}

// plainSecret: v is the same in every escaped form (letters, digits, - . _).
func plainSecret(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// addBase64 registers the base64 forms of v: whole (both alphabets, with and
// without padding) and, since inside a longer encoded text v starts at one of three
// offsets in a 3-byte group, the text of the groups made only of its own bytes.
func (r *Redactor) addBase64(v string) {
	b := []byte(v)
	std := base64.StdEncoding.EncodeToString(b)
	r.addForm(std, false)
	r.addForm(strings.TrimRight(std, "="), false)
	if strings.ContainsAny(std, "+/") {
		u := base64.URLEncoding.EncodeToString(b)
		r.addForm(u, false)
		r.addForm(strings.TrimRight(u, "="), false)
	}
	for d := 0; d < 3 && d < len(b); d++ {
		rest := b[d:]
		n := len(rest) / 3 * 3
		if n/3*4 < MinSecretLen {
			continue
		}
		f := base64.RawStdEncoding.EncodeToString(rest[:n])
		r.addForm(f, false)
		if strings.ContainsAny(f, "+/") {
			r.addForm(strings.NewReplacer("+", "-", "/", "_").Replace(f), false)
		}
	}
}

func (r *Redactor) addForm(text string, token bool) {
	if len(text) < minSecretLen {
		return
	}
	if r.index8 == nil {
		r.index8, r.index4, r.prefix4 = map[uint64][]formRef{}, map[uint32][]int32{}, map[uint32][]int32{}
		r.filter8, r.filter4 = make([]uint64, filterBits/64), make([]uint64, filterBits/64)
	}
	i := int32(len(r.forms))
	r.forms = append(r.forms, redactForm{text: text, token: token})
	p := key4(text)
	r.prefix4[p] = append(r.prefix4[p], i)
	r.maxLen = max(r.maxLen, len(text))
	if len(text) < 8 {
		k := key4(text)
		r.index4[k] = append(r.index4[k], i)
		setBit(r.filter4, hash32(uint64(k)))
		return
	}
	best, bestN := 0, -1
	for _, off := range [...]int{0, (len(text) - 8) / 2, len(text) - 8} {
		if n := len(r.index8[key8(text[off:])]); bestN < 0 || n < bestN {
			best, bestN = off, n
		}
	}
	k := key8(text[best:])
	r.index8[k] = append(r.index8[k], formRef{form: i, off: int32(best)})
	setBit(r.filter8, hash32(k))
}

func key4(s string) uint32 {
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}

func key8(s string) uint64 { return uint64(key4(s)) | uint64(key4(s[4:]))<<32 }

func hash32(k uint64) uint32 { return uint32((k*0x9E3779B97F4A7C15)>>40) % filterBits }

func setBit(f []uint64, h uint32)      { f[h/64] |= 1 << (h % 64) }
func hasBit(f []uint64, h uint32) bool { return f[h/64]&(1<<(h%64)) != 0 }

func jsonEscape(s string, html bool) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(html)
	if err := enc.Encode(s); err != nil {
		return s
	}
	out := strings.TrimSuffix(b.String(), "\n")
	return out[1 : len(out)-1]
}

// lowerHexEscapes rewrites %2B as %2b (some encoders use lower-case hex).
func lowerHexEscapes(s string) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			for j := i + 1; j <= i+2; j++ {
				if b[j] >= 'A' && b[j] <= 'F' {
					b[j] += 'a' - 'A'
				}
			}
		}
	}
	return string(b)
}

// Len is the number of registered values.
func (r *Redactor) Len() int {
	if r == nil {
		return 0
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.values)
}

// Redact returns s with every form of every secret value replaced by "***";
// overlapping matches become one "***". When s is JSON (a JSON log line, a JSON
// report, or a piece of one), a secret in the position of an object key of s
// itself is left alone (it is one of the output's own keys, and masking it would
// both break the output and tell the secret); one inside an escaped JSON text in a
// string value is masked.
func (r *Redactor) Redact(s string) string { return r.redact(s, looksJSON(s)) }

// looksJSON: s starts (after blanks) like a JSON text or a piece of an indented one.
// Plain text (console logs, text reports) has no keys to spare.
func looksJSON(s string) bool {
	t := strings.TrimLeft(s, " \t\r\n")
	return t != "" && (t[0] == '{' || t[0] == '[' || t[0] == '"')
}

// RedactValue is Redact for a text that is a value as a whole (an error message, a
// reason): there is no key of the output in it, so a secret is masked in a key
// position too (a server may echo a request back as the keys of a JSON object).
func (r *Redactor) RedactValue(s string) string { return r.redact(s, false) }

func (r *Redactor) redact(s string, keys bool) string {
	if r == nil || len(s) < minSecretLen {
		return s
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if len(r.forms) == 0 {
		return s
	}
	// Find every match: windows of 8 bytes for the long forms, 4 for the short.
	var ms []formMatch
	found := func(st int, f *redactForm) {
		if st >= 0 && strings.HasPrefix(s[st:], f.text) {
			ms = append(ms, formMatch{st, st + len(f.text), f.token})
		}
	}
	for i := 0; i+8 <= len(s); i++ {
		k := key8(s[i:])
		if !hasBit(r.filter8, hash32(k)) {
			continue
		}
		for _, ref := range r.index8[k] {
			found(i-int(ref.off), &r.forms[ref.form])
		}
	}
	if len(r.index4) > 0 {
		for i := 0; i+4 <= len(s); i++ {
			k := key4(s[i:])
			if !hasBit(r.filter4, hash32(uint64(k))) {
				continue
			}
			for _, fi := range r.index4[k] {
				found(i, &r.forms[fi])
			}
		}
	}
	if len(ms) == 0 && !strings.Contains(s, "...") {
		return s
	}
	slices.SortFunc(ms, func(a, b formMatch) int { return cmp.Or(a.i-b.i, b.j-a.j) })
	spans := r.clipped(s, maskedSpans(s, ms, keys), keys)
	if len(spans) == 0 {
		return s
	}
	return maskSpans(s, spans)
}

// formMatch is where a secret's form was found in a text: s[i:j].
type formMatch struct {
	i, j  int
	token bool
}

// maskedSpans returns the spans of s to mask for the matches ms (sorted by start,
// longest first). A token form's match is masked when it stands alone; matches of
// token forms that overlap are also checked as one chain (two secrets glued
// together); matches of other forms are masked as they are.
func maskedSpans(s string, ms []formMatch, keys bool) []span {
	ok := func(i, j int) bool { return wholeToken(s, i, j) && !(keys && jsonKey(s, i, j)) }
	var spans []span
	cs, ce := -1, -1
	for _, m := range ms {
		if !m.token {
			spans = append(spans, span{m.i, m.j})
			continue
		}
		if ok(m.i, m.j) {
			spans = append(spans, span{m.i, m.j})
		}
		if cs >= 0 && m.i < ce {
			ce = max(ce, m.j)
			continue
		}
		if cs >= 0 && ok(cs, ce) {
			spans = append(spans, span{cs, ce})
		}
		cs, ce = m.i, m.j
	}
	if cs >= 0 && ok(cs, ce) {
		spans = append(spans, span{cs, ce})
	}
	return spans
}

// maskSpans returns s with each of spans (not empty) replaced by "***", overlapping
// spans as one. spans is sorted in place.
func maskSpans(s string, spans []span) string {
	slices.SortFunc(spans, func(a, b span) int { return a.i - b.i })
	out := make([]byte, 0, len(s))
	last, start, end := 0, spans[0].i, spans[0].j
	for _, sp := range spans[1:] {
		if sp.i < end {
			end = max(end, sp.j)
			continue
		}
		out = append(append(out, s[last:start]...), "***"...)
		last, start, end = end, sp.i, sp.j
	}
	out = append(append(out, s[last:start]...), "***"...)
	out = append(out, s[end:]...)
	return string(out)
}

type span struct{ i, j int }

// clipped masks the start of a secret cut off by "..." (an API message or a body
// snippet clipped to a few hundred bytes can end in the middle of a secret).
func (r *Redactor) clipped(s string, spans []span, keys bool) []span {
	for off := 0; ; {
		k := strings.Index(s[off:], "...")
		if k < 0 {
			return spans
		}
		k += off
		off = k + 3
		// The longest start of a form that ends right before the "...": look the
		// forms up by their first four bytes at each position before it.
		best := 0
		for p := max(0, k-r.maxLen); p+minSecretLen <= k; p++ {
			m := k - p
			for _, fi := range r.prefix4[key4(s[p:])] {
				f := &r.forms[fi]
				if m < len(f.text) && strings.HasPrefix(f.text, s[p:k]) && (!f.token || wholeToken(s[:k]+" ", p, k) && !(keys && jsonKey(s, p, k))) {
					best = m
					break
				}
			}
			if best > 0 {
				break
			}
		}
		if best > 0 {
			spans = append(spans, span{k - best, k})
		}
	}
}

// wholeToken reports whether s[i:j] stands alone: no letter or digit glued to it
// (escape sequences such as \n, \u00e9 and %0A count as separators).
func wholeToken(s string, i, j int) bool {
	if isWord(s[i]) && i > 0 && isWord(s[i-1]) && !afterEscape(s, i) {
		return false
	}
	if isWord(s[j-1]) && j < len(s) && isWord(s[j]) {
		return false
	}
	return true
}

// jsonKey reports whether s[i:j] is a whole JSON object key of s ("KEY": with
// unescaped quotes), not a key inside an escaped JSON text held in a string.
func jsonKey(s string, i, j int) bool {
	if i == 0 || s[i-1] != '"' || (i >= 2 && s[i-2] == '\\') || j >= len(s) || s[j] != '"' {
		return false
	}
	k := j + 1
	for k < len(s) && (s[k] == ' ' || s[k] == '\t') {
		k++
	}
	return k < len(s) && s[k] == ':'
}

func isWord(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// afterEscape: s[:i] ends with an escape sequence (\n, \t, \uXXXX, %XX).
func afterEscape(s string, i int) bool {
	if i >= 2 && s[i-2] == '\\' && strings.IndexByte("nrtbf", s[i-1]) >= 0 {
		return true
	}
	if i >= 3 && s[i-3] == '%' && isHex(s[i-2]) && isHex(s[i-1]) {
		return true
	}
	return i >= 6 && s[i-6] == '\\' && s[i-5] == 'u' && isHex(s[i-4]) && isHex(s[i-3]) && isHex(s[i-2]) && isHex(s[i-1])
}

// Writer wraps w so that everything written through it is redacted. Each Write must
// carry whole lines or whole values (zerolog writes one event per call).
func (r *Redactor) Writer(w interface{ Write([]byte) (int, error) }) *RedactWriter {
	return &RedactWriter{r: r, w: w}
}

// RedactWriter is an io.Writer that redacts secrets before writing.
type RedactWriter struct {
	r *Redactor
	w interface{ Write([]byte) (int, error) }
}

func (rw *RedactWriter) Write(p []byte) (int, error) {
	out := rw.r.Redact(string(p))
	if _, err := rw.w.Write([]byte(out)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// valueOrigin says what an interpolated scalar of the plan is made of.
type valueOrigin struct {
	row, secret, output bool
	cliVar              string // a var it names that --var set
}

// secretPolicy is what DecodeItem needs to check secret fields: the origin of every
// interpolated scalar (by position; a scalar with no entry is a literal) and the
// redactor that learns values taken from foreach rows.
type secretPolicy struct {
	origins map[Pos]valueOrigin
	red     *Redactor
}

// noteOrigin records what the scalar at pos is made of.
func (l *loader) noteOrigin(pos Pos, cs *scalarT) {
	o := l.pol.origins[pos]
	o.row = o.row || cs.rowDep
	o.secret = o.secret || cs.secret
	o.output = o.output || len(cs.refs) > 0
	for _, v := range cs.vars {
		if _, ok := l.o.Vars[v]; ok && o.cliVar == "" {
			o.cliVar = v
		}
	}
	l.pol.origins[pos] = o
}

// secretField checks the value of a Secret field (see DecodeItem).
func (w *strictWalker) secretField(n *yaml.Node, p *fpath) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() == nullTag || n.Value == "" || n.Tag == SecretTag {
		return // not a string (locate reports it), absent, or a resolved secret
	}
	o := w.pol.origins[NodePos(w.file, n)]
	switch {
	case o.output:
		// Resolved at run time from another item's output.
	case o.cliVar != "":
		w.fail(n, p, fmt.Errorf("the value comes from --var %s, and command-line values are visible to every local user (/proc/PID/cmdline, ps): export it and write ${env.NAME}, or put it in a file and write ${file.PATH}", o.cliVar))
	case o.row:
		if len(n.Value) < MinSecretLen {
			w.fail(n, p, fmt.Errorf("the value from a foreach row (not shown) has fewer than %d characters: too short for a secret", MinSecretLen))
			return
		}
		w.pol.red.Add(n.Value)
	case n.Value == PublicDefaultPassword:
		// The factory default of a new Nx server is public, not a secret.
	default:
		w.fail(n, p, fmt.Errorf("a secret field holds a value written in the plan (not shown): write ${env.NAME} or ${file.PATH} so that the secret stays out of the plan file"))
	}
}
