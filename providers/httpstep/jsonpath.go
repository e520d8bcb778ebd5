package httpstep

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Path is a compiled output path into a JSON answer. Syntax: dot-separated field
// names; "[N]" picks a list element; "[field=value]" picks the first list element
// whose field equals value (as text); an empty path or "$" is the whole answer.
//
//	id                     {"id": 7}                        -> "7"
//	data.token             {"data": {"token": "t"}}         -> "t"
//	items[0].id            {"items": [{"id": 1}]}           -> "1"
//	users[email=a@x.io].id {"users": [{"email":"a@x.io","id":3}]} -> "3"
type Path struct {
	text string
	segs []seg
}

type seg struct {
	field string // "" when the segment is only an index or a filter
	index int    // -1: none
	key   string // filter field; "" when none
	value string
}

// ParsePath compiles a path.
func ParsePath(s string) (Path, error) {
	p := Path{text: s}
	s = strings.TrimPrefix(strings.TrimSpace(s), "$")
	s = strings.TrimPrefix(s, ".")
	if s == "" {
		return p, nil
	}
	for _, part := range splitDots(s) {
		if part == "" {
			return Path{}, fmt.Errorf("path %q: empty segment", p.text)
		}
		name := part
		var sels []string
		if i := strings.IndexByte(part, '['); i >= 0 {
			name = part[:i]
			rest := part[i:]
			for rest != "" {
				if rest[0] != '[' {
					return Path{}, fmt.Errorf("path %q: unexpected %q", p.text, rest)
				}
				j := strings.IndexByte(rest, ']')
				if j < 0 {
					return Path{}, fmt.Errorf("path %q: missing ]", p.text)
				}
				sels = append(sels, rest[1:j])
				rest = rest[j+1:]
			}
		}
		if name != "" {
			p.segs = append(p.segs, seg{field: name, index: -1})
		}
		for _, sel := range sels {
			if k, v, ok := strings.Cut(sel, "="); ok {
				if k == "" {
					return Path{}, fmt.Errorf("path %q: filter [%s] needs a field name", p.text, sel)
				}
				p.segs = append(p.segs, seg{index: -1, key: k, value: v})
				continue
			}
			n, err := strconv.Atoi(sel)
			if err != nil || n < 0 {
				return Path{}, fmt.Errorf("path %q: [%s] is neither an index nor a field=value filter", p.text, sel)
			}
			p.segs = append(p.segs, seg{index: n})
		}
	}
	return p, nil
}

// splitDots splits on dots outside brackets (filter values may hold dots: emails).
func splitDots(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[':
			depth++
		case ']':
			depth--
		case '.':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

func (p Path) String() string { return p.text }

// Get returns the value at the path, or false when some segment is missing.
func (p Path) Get(v any) (any, bool) {
	for _, s := range p.segs {
		switch {
		case s.field != "":
			m, ok := v.(map[string]any)
			if !ok {
				return nil, false
			}
			if v, ok = m[s.field]; !ok {
				return nil, false
			}
		case s.key != "":
			l, ok := v.([]any)
			if !ok {
				return nil, false
			}
			found := false
			for _, e := range l {
				m, ok := e.(map[string]any)
				if !ok {
					continue
				}
				if f, ok := m[s.key]; ok && Text(f) == s.value {
					v, found = e, true
					break
				}
			}
			if !found {
				return nil, false
			}
		default:
			l, ok := v.([]any)
			if !ok || s.index >= len(l) {
				return nil, false
			}
			v = l[s.index]
		}
	}
	return v, v != nil
}

// Text renders a JSON value as output text: strings as they are, numbers exactly,
// objects and lists as compact JSON.
func Text(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	case json.Number:
		return t.String()
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(t)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// decodeJSON decodes an answer keeping numbers exact.
func decodeJSON(b []byte) (any, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, nil
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}
