package plan

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Interpolation of scalar values. Expansion runs in two phases so that an item's
// hash never depends on a secret value:
//   - phase 1 (expand): ${var.X} and ${<row>.COL} are substituted; ${env.X},
//     ${file.P} and ${outputs.I.K} are kept as text (with their own inner
//     references already substituted), and reported to the caller;
//   - phase 2 (resolveSecrets): ${env.X} and ${file.P} are replaced by their values,
//     which are added to the redactor.
// ${outputs.I.K} stays until run time (ResolveRefs). "$${" is a literal "${".

const maxFileSecret = 1 << 20

// scope is what phase 1 can substitute.
type scope struct {
	vars map[string]string
	rows map[string]map[string]string // as-name -> column -> value
	// allowOutputs: output references are allowed here (item fields only).
	allowOutputs bool
	// allowSecrets: env/file references are allowed here (not in vars or names).
	allowSecrets bool
}

// found describes what phase 1 met in one string.
type found struct {
	secrets bool
	refs    []Ref
	whole   bool // the string is exactly one reference
}

var errNoRef = errors.New("no reference")

// expand runs phase 1 on s.
func (sc *scope) expand(s string, pos Pos) (string, found, error) {
	var f found
	if !strings.Contains(s, "${") {
		return s, f, nil
	}
	out, err := sc.expandText(s, pos, &f, 0)
	if err != nil {
		return "", f, err
	}
	if strings.HasPrefix(s, "${") && strings.HasSuffix(s, "}") {
		if end, err := matchBrace(s, 2); err == nil && end == len(s)-1 {
			f.whole = true
		}
	}
	return out, f, nil
}

func (sc *scope) expandText(s string, pos Pos, f *found, depth int) (string, error) {
	if depth > 8 {
		return "", errors.New("references nested too deeply")
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		j := strings.Index(s[i:], "${")
		if j < 0 {
			b.WriteString(s[i:])
			break
		}
		j += i
		if j > 0 && s[j-1] == '$' {
			// "$${": keep escaped until the end (unescape happens in finish).
			b.WriteString(s[i : j+2])
			i = j + 2
			continue
		}
		b.WriteString(s[i:j])
		end, err := matchBrace(s, j+2)
		if err != nil {
			return "", fmt.Errorf("unterminated reference %q", clipRef(s[j:]))
		}
		inner, err := sc.expandText(s[j+2:end], pos, f, depth+1)
		if err != nil {
			return "", err
		}
		val, err := sc.ref(inner, pos, f)
		if err != nil {
			return "", err
		}
		b.WriteString(val)
		i = end + 1
	}
	return b.String(), nil
}

// matchBrace returns the index of the "}" closing a reference whose body starts at i.
func matchBrace(s string, i int) (int, error) {
	depth := 0
	for k := i; k < len(s); k++ {
		switch {
		case s[k] == '$' && k+1 < len(s) && s[k+1] == '{':
			depth++
			k++
		case s[k] == '}':
			if depth == 0 {
				return k, nil
			}
			depth--
		}
	}
	return 0, errNoRef
}

func clipRef(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// ref evaluates one reference body ("var.x", "row.col", "env.X", ...).
func (sc *scope) ref(body string, pos Pos, f *found) (string, error) {
	ns, rest, ok := strings.Cut(body, ".")
	if !ok || rest == "" {
		return "", fmt.Errorf("reference ${%s}: want ${namespace.name} (var, env, file, outputs, or a foreach row)", body)
	}
	switch ns {
	case "var":
		v, ok := sc.vars[rest]
		if !ok {
			return "", fmt.Errorf("${var.%s}: the plan declares no var %q", rest, rest)
		}
		return v, nil
	case "env", "file":
		if !sc.allowSecrets {
			return "", fmt.Errorf("${%s}: secret references are not allowed here", body)
		}
		f.secrets = true
		return "${" + body + "}", nil
	case "outputs":
		if !sc.allowOutputs {
			return "", fmt.Errorf("${%s}: output references are only allowed in item fields", body)
		}
		k := strings.LastIndexByte(rest, '.')
		if k <= 0 || k == len(rest)-1 {
			return "", fmt.Errorf("${%s}: want ${outputs.ITEM.KEY}", body)
		}
		f.refs = append(f.refs, Ref{Item: rest[:k], Key: rest[k+1:], Pos: pos})
		return "${" + body + "}", nil
	}
	if row, ok := sc.rows[ns]; ok {
		v, ok := row[rest]
		if !ok {
			return "", fmt.Errorf("${%s}: the %q rows have no field %q (they have: %s)", body, ns, rest, strings.Join(sortedKeys(row), ", "))
		}
		return v, nil
	}
	if len(sc.rows) == 0 && ns == "row" {
		return "", fmt.Errorf("${%s}: row references need a foreach", body)
	}
	return "", fmt.Errorf("${%s}: unknown namespace %q (want var, env, file, outputs%s)", body, ns, rowNames(sc.rows))
}

func rowNames(rows map[string]map[string]string) string {
	if len(rows) == 0 {
		return ""
	}
	return " or " + strings.Join(sortedKeys(rows), ", ")
}

// secretResolver is phase 2.
type secretResolver struct {
	dir    string
	getenv func(string) (string, bool)
	red    *Redactor
	cache  map[string]string
}

// resolve replaces ${env.X} and ${file.P} in s (phase-1 output) and unescapes "$${".
func (r *secretResolver) resolve(s string) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		j := strings.Index(s[i:], "${")
		if j < 0 {
			b.WriteString(s[i:])
			break
		}
		j += i
		if j > 0 && s[j-1] == '$' {
			b.WriteString(s[i : j+2])
			i = j + 2
			continue
		}
		end, err := matchBrace(s, j+2)
		if err != nil {
			b.WriteString(s[i:])
			break
		}
		body := s[j+2 : end]
		ns, rest, _ := strings.Cut(body, ".")
		b.WriteString(s[i:j])
		switch ns {
		case "env", "file":
			v, err := r.value(ns, rest)
			if err != nil {
				return "", err
			}
			b.WriteString(v)
		default:
			b.WriteString(s[j : end+1])
		}
		i = end + 1
	}
	return b.String(), nil
}

func (r *secretResolver) value(ns, name string) (string, error) {
	key := ns + ":" + name
	if v, ok := r.cache[key]; ok {
		return v, nil
	}
	var v string
	switch ns {
	case "env":
		val, ok := r.getenv(name)
		if !ok {
			return "", fmt.Errorf("${env.%s}: environment variable %s is not set", name, name)
		}
		if val == "" {
			return "", fmt.Errorf("${env.%s}: environment variable %s is empty", name, name)
		}
		v = val
	case "file":
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(r.dir, p)
		}
		fi, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("${file.%s}: %v", name, errors.Unwrap(err))
		}
		if fi.Size() > maxFileSecret {
			return "", fmt.Errorf("${file.%s}: file is larger than %d bytes", name, maxFileSecret)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return "", fmt.Errorf("${file.%s}: %v", name, errors.Unwrap(err))
		}
		v = strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return "", fmt.Errorf("${file.%s}: file is empty", name)
		}
	}
	r.red.Add(v)
	if r.cache == nil {
		r.cache = map[string]string{}
	}
	r.cache[key] = v
	return v, nil
}

// unescape turns "$${" into "${" (last step for values that reach providers).
func unescape(s string) string {
	if !strings.Contains(s, "$${") {
		return s
	}
	return strings.ReplaceAll(s, "$${", "${")
}
