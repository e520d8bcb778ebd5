package plan

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// row is one foreach row: values by source name ("row", or the source's "as").
type row struct {
	values map[string]map[string]string
	origin string
}

// source is one foreach source, materialised.
type source struct {
	as      string
	rows    []map[string]string
	origins []string
}

type foreachYAML struct {
	CSV   string     `yaml:"csv"`
	List  yaml.Node  `yaml:"list"`
	Range *rangeYAML `yaml:"range"`
	As    string     `yaml:"as"`
}

type rangeYAML struct {
	From   *int64 `yaml:"from"`
	To     *int64 `yaml:"to"`
	Step   int64  `yaml:"step"`
	Format string `yaml:"format"`
}

// foreach materialises the rows of an entry (one source or the product of several).
func (l *loader) foreach(where string, n *yaml.Node) ([]row, bool) {
	var nodes []*yaml.Node
	switch n.Kind {
	case yaml.MappingNode:
		nodes = []*yaml.Node{n}
	case yaml.SequenceNode:
		nodes = n.Content
		if len(nodes) == 0 {
			l.errf(l.pos(n), "%s.foreach: empty list of sources", where)
			return nil, false
		}
	default:
		l.errf(l.pos(n), "%s.foreach: want a source ({csv: FILE}, {list: [...]}, {range: {from, to}}) or a list of sources", where)
		return nil, false
	}
	// Check sizes before materialising anything big.
	var specs []foreachYAML
	total := 1.0
	names := map[string]bool{}
	ok := true
	for i, sn := range nodes {
		fw := where + ".foreach"
		if len(nodes) > 1 {
			fw = fmt.Sprintf("%s.foreach[%d]", where, i)
		}
		var f foreachYAML
		if sn.Kind != yaml.MappingNode {
			l.errf(l.pos(sn), "%s: want a mapping with csv, list or range", fw)
			ok = false
			continue
		}
		if err := DecodeStrict(l.file, sn, &f); err != nil {
			l.errs = append(l.errs, prefixErrors(fw, err)...)
			ok = false
			continue
		}
		kinds := 0
		if f.CSV != "" {
			kinds++
		}
		if f.List.Kind != 0 {
			kinds++
		}
		if f.Range != nil {
			kinds++
		}
		if kinds != 1 {
			l.errf(l.pos(sn), "%s: want exactly one of csv, list or range, got %d", fw, kinds)
			ok = false
			continue
		}
		if f.As == "" {
			f.As = "row"
		}
		if !epNameRE.MatchString(f.As) || f.As == "var" || f.As == "env" || f.As == "file" || f.As == "outputs" {
			l.errf(l.pos(sn), "%s.as: %q is not a usable name", fw, f.As)
			ok = false
			continue
		}
		if names[f.As] {
			l.errf(l.pos(sn), "%s.as: %q is used by another source of this foreach (give each source its own as:)", fw, f.As)
			ok = false
			continue
		}
		names[f.As] = true
		switch {
		case f.Range != nil:
			r := f.Range
			if r.From == nil || r.To == nil {
				l.errf(l.pos(sn), "%s.range: from and to are required", fw)
				ok = false
				continue
			}
			if r.Step == 0 {
				r.Step = 1
			}
			if r.Step < 0 || *r.To < *r.From {
				l.errf(l.pos(sn), "%s.range: want from <= to and a positive step", fw)
				ok = false
				continue
			}
			total *= float64((*r.To-*r.From)/r.Step + 1)
		case f.List.Kind != 0:
			if f.List.Kind != yaml.SequenceNode {
				l.errf(l.pos(&f.List), "%s.list: want a list", fw)
				ok = false
				continue
			}
			total *= float64(len(f.List.Content))
		}
		specs = append(specs, f)
	}
	if !ok {
		return nil, false
	}
	limit := float64(l.o.MaxItems)
	if total > limit {
		l.errf(l.pos(n), "%s.foreach: expansion would produce %.0f items, more than the limit of %d", where, total, l.o.MaxItems)
		return nil, false
	}
	var srcs []source
	for i, f := range specs {
		fw := where + ".foreach"
		if len(nodes) > 1 {
			fw = fmt.Sprintf("%s.foreach[%d]", where, i)
		}
		var s source
		var err error
		switch {
		case f.Range != nil:
			s, err = rangeSource(f)
		case f.List.Kind != 0:
			s, err = l.listSource(f)
		default:
			s, err = l.csvSource(f)
		}
		if err != nil {
			var pe *PosError
			if errors.As(err, &pe) {
				l.errs = append(l.errs, Where(pe.Pos, fmt.Errorf("%s: %w", fw, pe.Err)))
			} else {
				l.errf(l.pos(nodes[i]), "%s: %v", fw, err)
			}
			return nil, false
		}
		total2 := 1.0
		for _, x := range srcs {
			total2 *= float64(len(x.rows))
		}
		if total2*float64(len(s.rows)) > limit {
			l.errf(l.pos(n), "%s.foreach: expansion would produce %.0f items, more than the limit of %d", where, total2*float64(len(s.rows)), l.o.MaxItems)
			return nil, false
		}
		srcs = append(srcs, s)
	}
	// Cartesian product, first source outermost.
	rows := []row{{values: map[string]map[string]string{}}}
	for _, s := range srcs {
		next := make([]row, 0, len(rows)*len(s.rows))
		for _, r := range rows {
			for k, v := range s.rows {
				vals := make(map[string]map[string]string, len(r.values)+1)
				for a, m := range r.values {
					vals[a] = m
				}
				vals[s.as] = v
				o := s.origins[k]
				if r.origin != "" {
					o = r.origin + " x " + o
				}
				next = append(next, row{values: vals, origin: o})
			}
		}
		rows = next
	}
	return rows, true
}

func rangeSource(f foreachYAML) (source, error) {
	r := f.Range
	format := r.Format
	if format == "" {
		format = "%d"
	}
	if strings.Count(format, "%")-2*strings.Count(format, "%%") != 1 || !strings.ContainsAny(format, "dxXob") {
		return source{}, fmt.Errorf("range.format %q: want one integer verb such as %%d or %%03d", format)
	}
	n := (*r.To-*r.From)/r.Step + 1
	if n > math.MaxInt32 {
		return source{}, errors.New("range too large")
	}
	s := source{as: f.As, rows: make([]map[string]string, 0, n), origins: make([]string, 0, n)}
	for i, v := int64(0), *r.From; v <= *r.To; i, v = i+1, v+r.Step {
		s.rows = append(s.rows, map[string]string{"value": fmt.Sprintf(format, v), "index": strconv.FormatInt(i, 10)})
		s.origins = append(s.origins, "range "+strconv.FormatInt(v, 10))
	}
	return s, nil
}

func (l *loader) listSource(f foreachYAML) (source, error) {
	s := source{as: f.As}
	for i, e := range f.List.Content {
		m := map[string]string{"index": strconv.Itoa(i)}
		switch e.Kind {
		case yaml.ScalarNode:
			m["value"] = e.Value
		case yaml.MappingNode:
			for j := 0; j+1 < len(e.Content); j += 2 {
				k, v := e.Content[j], e.Content[j+1]
				if v.Kind != yaml.ScalarNode {
					return source{}, Where(l.pos(v), fmt.Errorf("list[%d].%s: want a single value", i, k.Value))
				}
				if strings.Contains(v.Value, "${") {
					return source{}, Where(l.pos(v), fmt.Errorf("list[%d].%s: list values cannot hold references", i, k.Value))
				}
				m[k.Value] = v.Value
			}
		default:
			return source{}, Where(l.pos(e), fmt.Errorf("list[%d]: want a value or a mapping of values", i))
		}
		s.rows = append(s.rows, m)
		s.origins = append(s.origins, fmt.Sprintf("list[%d]", i))
	}
	return s, nil
}

func (l *loader) csvSource(f foreachYAML) (source, error) {
	name := f.CSV
	p := name
	if !filepath.IsAbs(p) {
		p = filepath.Join(l.dir, p)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return source{}, fmt.Errorf("csv %s: %v", name, errors.Unwrap(err))
	}
	if fi.Size() > MaxCSVBytes {
		return source{}, fmt.Errorf("csv %s: %d bytes is more than the %d MiB limit", name, fi.Size(), MaxCSVBytes>>20)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return source{}, fmt.Errorf("csv %s: %v", name, errors.Unwrap(err))
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	r := csv.NewReader(bytes.NewReader(data))
	r.ReuseRecord = false
	header, err := r.Read()
	if err == io.EOF {
		return source{}, fmt.Errorf("csv %s: empty file (want a header row)", name)
	}
	if err != nil {
		return source{}, csvError(name, err)
	}
	cols := make([]string, len(header))
	seen := map[string]bool{}
	for i, h := range header {
		h = strings.TrimSpace(h)
		if h == "" {
			return source{}, fmt.Errorf("%s:1: column %d has no name in the header row", name, i+1)
		}
		if seen[h] {
			return source{}, fmt.Errorf("%s:1: column %q appears twice in the header row", name, h)
		}
		seen[h] = true
		cols[i] = h
	}
	r.FieldsPerRecord = len(cols)
	s := source{as: f.As}
	for i := 0; ; i++ {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return source{}, csvError(name, err)
		}
		line, _ := r.FieldPos(0)
		m := make(map[string]string, len(cols)+1)
		for c, v := range rec {
			m[cols[c]] = strings.TrimSpace(v)
		}
		m["index"] = strconv.Itoa(i)
		s.rows = append(s.rows, m)
		s.origins = append(s.origins, fmt.Sprintf("%s:%d", name, line))
		if len(s.rows) > l.o.MaxItems {
			return source{}, fmt.Errorf("csv %s: more than %d rows", name, l.o.MaxItems)
		}
	}
	if len(s.rows) == 0 {
		return source{}, fmt.Errorf("csv %s: no rows after the header", name)
	}
	return s, nil
}

func csvError(name string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		if errors.Is(pe.Err, csv.ErrFieldCount) {
			return fmt.Errorf("%s:%d: row has a different number of fields than the header", name, pe.Line)
		}
		return fmt.Errorf("%s:%d:%d: %v", name, pe.Line, pe.Column, pe.Err)
	}
	return fmt.Errorf("csv %s: %v", name, err)
}
