package plan

import (
	"sort"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// SecretTag is the YAML tag Load puts on every scalar of Item.Fields that holds a
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
type Redactor struct {
	mu     sync.RWMutex
	values map[string]struct{}
	r      *strings.Replacer
}

// NewRedactor returns an empty redactor.
func NewRedactor() *Redactor { return &Redactor{values: map[string]struct{}{}} }

// minSecretLen keeps tiny values ("1", "a") from turning every text into stars;
// such values are refused as secrets by validation anyway.
const minSecretLen = 4

// Add registers secret values.
func (r *Redactor) Add(values ...string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	changed := false
	for _, v := range values {
		if len(v) < minSecretLen {
			continue
		}
		if _, ok := r.values[v]; !ok {
			r.values[v] = struct{}{}
			changed = true
		}
	}
	if changed {
		r.r = nil
	}
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

// Redact returns s with every secret value replaced by "***".
func (r *Redactor) Redact(s string) string {
	if r == nil || s == "" {
		return s
	}
	r.mu.RLock()
	rep := r.r
	n := len(r.values)
	r.mu.RUnlock()
	if n == 0 {
		return s
	}
	if rep == nil {
		r.mu.Lock()
		if r.r == nil {
			vals := make([]string, 0, len(r.values))
			for v := range r.values {
				vals = append(vals, v)
			}
			// Longest first, so a secret that contains another is masked whole.
			sort.Slice(vals, func(i, j int) bool { return len(vals[i]) > len(vals[j]) })
			pairs := make([]string, 0, 2*len(vals))
			for _, v := range vals {
				pairs = append(pairs, v, "***")
			}
			r.r = strings.NewReplacer(pairs...)
		}
		rep = r.r
		r.mu.Unlock()
	}
	return rep.Replace(s)
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
