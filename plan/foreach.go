package plan

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// MaxCSVBytes caps a foreach CSV file.
const MaxCSVBytes = 64 << 20

// colIndex is the column every source has: the 0-based row number in that source.
const colIndex = -1

// source is one foreach source. Rows are not materialised: values are looked up (CSV,
// list) or computed (range) when a row is evaluated.
type source struct {
	kind string // csv, list, range
	as   string
	n    int
	cols map[string]int

	// csv
	file  string
	recs  [][]string
	lines []int
	// list
	vals    [][]string
	present [][]bool
	// range
	from, step int64
	format     string
}

func (s *source) column(name string) (int, bool) {
	if c, ok := s.cols[name]; ok {
		return c, true
	}
	if name == "index" {
		return colIndex, true
	}
	return 0, false
}

func (s *source) noColumn(name string) string {
	names := make([]string, 0, len(s.cols)+1)
	for c := range s.cols {
		names = append(names, c)
	}
	if _, ok := s.cols["index"]; !ok {
		names = append(names, "index")
	}
	sort.Strings(names)
	switch s.kind {
	case "csv":
		return fmt.Sprintf("%s:1: no column %q (columns: %s)", s.file, name, strings.Join(names, ", "))
	case "list":
		return fmt.Sprintf("no list entry has a field %q (fields: %s)", name, strings.Join(names, ", "))
	}
	return fmt.Sprintf("a range row has no field %q (fields: %s)", name, strings.Join(names, ", "))
}

func (s *source) origin(i int) string {
	switch s.kind {
	case "csv":
		return s.file + ":" + strconv.Itoa(s.lines[i])
	case "list":
		return "list[" + strconv.Itoa(i) + "]"
	}
	return "range " + strconv.FormatInt(s.from+int64(i)*s.step, 10)
}

func (s *source) rangeValue(i int) string {
	v := s.from + int64(i)*s.step
	if s.format == "%d" {
		return strconv.FormatInt(v, 10)
	}
	return fmt.Sprintf(s.format, v)
}

// rowCtx is the current row of a product of sources.
type rowCtx struct {
	srcs []*source
	idx  []int
	rv   []string // cached range values
	rvi  []int
}

func newRowCtx(srcs []*source) *rowCtx {
	rc := &rowCtx{srcs: srcs, idx: make([]int, len(srcs)), rv: make([]string, len(srcs)), rvi: make([]int, len(srcs))}
	for i := range rc.rvi {
		rc.rvi[i] = -1
	}
	return rc
}

// next advances to the next row (last source fastest); false after the last row.
func (rc *rowCtx) next() bool {
	for i := len(rc.idx) - 1; i >= 0; i-- {
		rc.idx[i]++
		if rc.idx[i] < rc.srcs[i].n {
			return true
		}
		rc.idx[i] = 0
	}
	return false
}

func (rc *rowCtx) origin() string {
	switch len(rc.srcs) {
	case 0:
		return ""
	case 1:
		return rc.srcs[0].origin(rc.idx[0])
	}
	parts := make([]string, len(rc.srcs))
	for i, s := range rc.srcs {
		parts[i] = s.origin(rc.idx[i])
	}
	return strings.Join(parts, " x ")
}

func (rc *rowCtx) value(src, col int) (string, error) {
	if rc == nil {
		return "", errors.New("row reference outside a row")
	}
	s, i := rc.srcs[src], rc.idx[src]
	if col == colIndex {
		return strconv.Itoa(i), nil
	}
	switch s.kind {
	case "csv":
		return s.recs[i][col], nil
	case "list":
		if !s.present[i][col] {
			for name, c := range s.cols {
				if c == col {
					return "", fmt.Errorf("${%s.%s}: list[%d] has no field %q", s.as, name, i, name)
				}
			}
		}
		return s.vals[i][col], nil
	}
	if rc.rvi[src] != i {
		rc.rv[src] = s.rangeValue(i)
		rc.rvi[src] = i
	}
	return rc.rv[src], nil
}

// foreach specs as written.
type foreachYAML struct {
	CSV   *string    `yaml:"csv"`
	List  yaml.Node  `yaml:"list"`
	Range *rangeYAML `yaml:"range"`
	As    string     `yaml:"as"`
}

type rangeYAML struct {
	From   *int64 `yaml:"from"`
	To     *int64 `yaml:"to"`
	Step   *int64 `yaml:"step"`
	Format string `yaml:"format"`
}

var reservedNS = map[string]bool{"var": true, "env": true, "file": true, "outputs": true}

// foreach reads the sources of an entry. The product size is checked against the
// limits before any row is built: ranges and lists are counted, CSV files are read
// (each at most MaxCSVBytes) but not expanded.
func (l *loader) foreach(where string, n *yaml.Node) ([]*source, bool) {
	var nodes []*yaml.Node
	switch n.Kind {
	case yaml.MappingNode:
		nodes = []*yaml.Node{n}
	case yaml.SequenceNode:
		nodes = n.Content
		if len(nodes) == 0 {
			l.errf(l.pos(n), "%s: empty list of sources", where)
			return nil, false
		}
	default:
		l.errf(l.pos(n), "%s: want a source ({csv: FILE}, {list: [...]} or {range: {from: 1, to: 10}}) or a list of sources", where)
		return nil, false
	}
	vsc := &scope{l: l, where: "foreach"}
	var specs []sourceSpec
	ok := true
	seenAs := map[string]bool{}
	for i, sn := range nodes {
		fw := where
		if n.Kind == yaml.SequenceNode {
			fw = fmt.Sprintf("%s[%d]", where, i)
		}
		s, good := l.sourceSpec(fw, sn, vsc, seenAs)
		if !good {
			ok = false
			continue
		}
		specs = append(specs, s)
	}
	if !ok {
		return nil, false
	}
	return l.buildSources(where, n, specs)
}

// sourceSpec is one source of a foreach, read and checked but not built.
type sourceSpec struct {
	f     foreachYAML
	n     *yaml.Node
	where string
	count float64 // rows of a range or list; CSV files are counted when read
}

// sourceSpec reads one source of a foreach at sn: vars instantiated, decoded
// strictly, one kind of source, an as name not taken by another source (seenAs),
// ranges and lists counted.
func (l *loader) sourceSpec(fw string, sn *yaml.Node, vsc *scope, seenAs map[string]bool) (sourceSpec, bool) {
	if sn.Kind != yaml.MappingNode {
		l.errf(l.pos(sn), "%s: want a mapping with one of csv, list or range", fw)
		return sourceSpec{}, false
	}
	node, good := l.instantiateOnce(sn, vsc, fw)
	if !good {
		return sourceSpec{}, false
	}
	var f foreachYAML
	if err := DecodeStrict(l.file, node, &f); err != nil {
		l.report(prefixErrors(fw, err)...)
		return sourceSpec{}, false
	}
	var kinds []string
	if f.CSV != nil {
		kinds = append(kinds, "csv")
	}
	if f.List.Kind != 0 {
		kinds = append(kinds, "list")
	}
	if f.Range != nil {
		kinds = append(kinds, "range")
	}
	if len(kinds) != 1 {
		if len(kinds) == 0 {
			l.errf(l.pos(sn), "%s: want one of csv, list or range", fw)
		} else {
			l.errf(l.pos(sn), "%s: want one of csv, list or range, not %s", fw, strings.Join(kinds, " and "))
		}
		return sourceSpec{}, false
	}
	if f.As == "" {
		f.As = "row"
	}
	asPos := l.pos(valueOf(node, "as"))
	if !isIdent(f.As) || reservedNS[f.As] {
		l.errf(asPos, "%s.as: %q: want a name of letters, digits, '_' or '-' other than var, env, file and outputs", fw, f.As)
		return sourceSpec{}, false
	}
	if seenAs[f.As] {
		l.errf(asPos, "%s.as: %q names another source of this foreach too: give each source its own as", fw, f.As)
		return sourceSpec{}, false
	}
	seenAs[f.As] = true
	s := sourceSpec{f: f, n: node, where: fw}
	switch {
	case f.Range != nil:
		c, err := rangeCount(f.Range)
		if err != nil {
			l.errf(l.pos(valueOf(node, "range")), "%s.range: %v", fw, err)
			return sourceSpec{}, false
		}
		s.count = c
	case f.List.Kind != 0:
		if f.List.Kind != yaml.SequenceNode || len(f.List.Content) == 0 {
			l.errf(l.pos(&f.List), "%s.list: want a non-empty list", fw)
			return sourceSpec{}, false
		}
		s.count = float64(len(f.List.Content))
	}
	return s, true
}

// buildSources builds the sources of the foreach n from their specs, checking the
// product against the item limit first with the ranges and lists, then after each
// CSV file is read.
func (l *loader) buildSources(where string, n *yaml.Node, specs []sourceSpec) ([]*source, bool) {
	srcs := make([]*source, len(specs))
	total := 1.0
	for _, s := range specs {
		if s.f.CSV == nil {
			total *= s.count
		}
	}
	if !l.checkExpansion(n, where, total) {
		return nil, false
	}
	for i, s := range specs {
		if s.f.CSV == nil {
			continue
		}
		src, err := l.csvSource(*s.f.CSV, s.f.As)
		if err != nil {
			for _, e := range flatten(err) {
				l.errf(l.pos(valueOf(s.n, "csv")), "%s.csv: %v", s.where, e)
			}
			return nil, false
		}
		srcs[i] = src
		total *= float64(src.n)
		if !l.checkExpansion(n, where, total) {
			return nil, false
		}
	}
	for i, s := range specs {
		var err error
		switch {
		case s.f.Range != nil:
			srcs[i], err = rangeSource(s.f.Range, s.f.As, int(s.count))
			if err != nil {
				l.errf(l.pos(valueOf(s.n, "range")), "%s.range: %v", s.where, err)
				return nil, false
			}
		case s.f.List.Kind != 0:
			srcs[i], err = l.listSource(&s.f.List, s.f.As)
			if err != nil {
				l.report(prefixErrors(s.where+".list", err)...)
				return nil, false
			}
		}
	}
	return srcs, true
}

func (l *loader) checkExpansion(n *yaml.Node, where string, total float64) bool {
	if total+float64(len(l.names)) > float64(l.o.MaxItems) {
		if len(l.names) > 0 {
			l.errf(l.pos(n), "%s: expansion would produce %.0f items, the plan would then hold %.0f, more than the limit of %d", where, total, total+float64(len(l.names)), l.o.MaxItems)
		} else {
			l.errf(l.pos(n), "%s: expansion would produce %.0f items, more than the limit of %d", where, total, l.o.MaxItems)
		}
		return false
	}
	return true
}

// valueOf returns the value node of key in mapping n, or n.
func valueOf(n *yaml.Node, key string) *yaml.Node {
	if n != nil && n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i+1]
			}
		}
	}
	return n
}

func rangeCount(r *rangeYAML) (float64, error) {
	if r.From == nil || r.To == nil {
		return 0, errors.New("from and to are required")
	}
	step := int64(1)
	if r.Step != nil {
		step = *r.Step
	}
	if step <= 0 {
		return 0, fmt.Errorf("step %d: want a positive step", step)
	}
	if *r.To < *r.From {
		return 0, fmt.Errorf("from %d is greater than to %d", *r.From, *r.To)
	}
	if r.Format != "" {
		if err := checkIntFormat(r.Format); err != nil {
			return 0, err
		}
	}
	diff := uint64(*r.To) - uint64(*r.From) // exact: to >= from
	return float64(diff/uint64(step)) + 1, nil
}

// checkIntFormat accepts a format with exactly one integer verb: %d, %x, %X, %o or %b,
// with flags and width ("%03d", "store-%04d").
func checkIntFormat(f string) error {
	verbs := 0
	for i := 0; i < len(f); i++ {
		if f[i] != '%' {
			continue
		}
		i++
		if i < len(f) && f[i] == '%' {
			continue
		}
		for i < len(f) && strings.IndexByte("+- #0123456789", f[i]) >= 0 {
			i++
		}
		if i >= len(f) || strings.IndexByte("dxXob", f[i]) < 0 {
			return fmt.Errorf("format %q: want one integer verb such as %%d or %%03d", f)
		}
		verbs++
	}
	if verbs != 1 {
		return fmt.Errorf("format %q: want one integer verb such as %%d or %%03d", f)
	}
	return nil
}

func rangeSource(r *rangeYAML, as string, n int) (*source, error) {
	step := int64(1)
	if r.Step != nil {
		step = *r.Step
	}
	if n <= 0 || n > math.MaxInt32 {
		return nil, fmt.Errorf("%d rows is out of bounds", n)
	}
	f := r.Format
	if f == "" {
		f = "%d"
	}
	return &source{kind: "range", as: as, n: n, cols: map[string]int{"value": 0}, from: *r.From, step: step, format: f}, nil
}

func (l *loader) listSource(list *yaml.Node, as string) (*source, error) {
	s := &source{kind: "list", as: as, n: len(list.Content), cols: map[string]int{}}
	var errs []error
	scalars, maps := 0, 0
	for i, e := range list.Content {
		switch e.Kind {
		case yaml.ScalarNode:
			scalars++
		case yaml.MappingNode:
			maps++
			for j := 0; j+1 < len(e.Content); j += 2 {
				k := e.Content[j].Value
				if _, ok := s.cols[k]; !ok {
					s.cols[k] = len(s.cols)
				}
			}
		default:
			errs = append(errs, Where(l.pos(e), &fieldError{path: fmt.Sprintf("[%d]", i), err: errors.New("want a value or a mapping of values")}))
		}
	}
	if scalars > 0 && maps > 0 {
		errs = append(errs, Where(l.pos(list), &fieldError{err: errors.New("want either values or mappings, not both")}))
	}
	if scalars > 0 {
		s.cols["value"] = 0
	}
	for i, e := range list.Content {
		vals := make([]string, len(s.cols))
		present := make([]bool, len(s.cols))
		set := func(col int, v *yaml.Node, field string) {
			if v.Kind != yaml.ScalarNode {
				errs = append(errs, Where(l.pos(v), &fieldError{path: fmt.Sprintf("[%d]%s", i, field), err: fmt.Errorf("want a single value, not %s", show(v))}))
				return
			}
			if v.ShortTag() != nullTag {
				vals[col] = v.Value
			}
			present[col] = true
		}
		switch e.Kind {
		case yaml.ScalarNode:
			set(0, e, "")
		case yaml.MappingNode:
			for j := 0; j+1 < len(e.Content); j += 2 {
				k := e.Content[j]
				c := s.cols[k.Value]
				if present[c] {
					errs = append(errs, Where(l.pos(k), &fieldError{path: fmt.Sprintf("[%d]", i), err: fmt.Errorf("duplicate field %q", k.Value)}))
					continue
				}
				set(c, e.Content[j+1], "."+k.Value)
			}
		}
		s.vals = append(s.vals, vals)
		s.present = append(s.present, present)
	}
	return s, errors.Join(errs...)
}

const nullTag = "!!null"

// csvSource reads a CSV file with a header row (cached per file).
func (l *loader) csvSource(name, as string) (*source, error) {
	key := name
	if !filepath.IsAbs(key) {
		key = filepath.Join(l.dir, key)
	}
	if c, ok := l.csvCache[key]; ok {
		if c.err != nil {
			return nil, c.err
		}
		s := *c.src
		s.as = as
		return &s, nil
	}
	src, err := l.readCSV(name)
	if l.csvCache == nil {
		l.csvCache = map[string]csvCached{}
	}
	l.csvCache[key] = csvCached{src, err}
	if err != nil {
		return nil, err
	}
	s := *src
	s.as = as
	return &s, nil
}

type csvCached struct {
	src *source
	err error
}

// maxCSVErrors caps the row errors reported for one CSV file.
const maxCSVErrors = 10

// readCSV streams a CSV file: rows are parsed as they are read, so the file's bytes
// are never held whole (a 50 MB file costs its rows, not its rows plus its text).
func (l *loader) readCSV(name string) (*source, error) {
	p := name
	if !filepath.IsAbs(p) {
		p = filepath.Join(l.dir, p)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, bareErr(err))
	}
	defer f.Close()
	in := &csvInput{r: f, left: MaxCSVBytes, line: 1}
	br := bufio.NewReaderSize(in, 64<<10)
	if bom, _ := br.Peek(3); bytes.Equal(bom, []byte("\xef\xbb\xbf")) {
		_, _ = br.Discard(3)
	}
	src, err := l.parseCSV(name, br)
	if err != nil {
		// A file over the size limit is reported as that, whatever its rows say
		// before the limit: read on (without keeping anything) to find out.
		_, _ = io.Copy(io.Discard, br)
	}
	// The file's own problems come first, each alone: they make its rows meaningless.
	switch {
	case in.over:
		return nil, fmt.Errorf("%s is larger than %s", name, sizeText(MaxCSVBytes))
	case in.err != nil:
		return nil, fmt.Errorf("read %s: %w", name, bareErr(in.err))
	case in.utf16:
		return nil, fmt.Errorf("%s:1:1: the file is UTF-16 (a byte-order mark or NUL bytes): save it as UTF-8", name)
	case in.bad:
		return nil, fmt.Errorf("%s:%d:%d: byte 0x%02x is not UTF-8: the file must be UTF-8 (save it as UTF-8)", name, in.badLine, in.badCol, in.badByte)
	}
	return src, err
}

// csvInput reads a CSV file for the csv reader, at most left bytes, and checks its
// encoding on the way: whether the file has more than the cap, looks like UTF-16 (a
// byte-order mark, NUL bytes), or holds a byte that is not UTF-8 (the first one's line
// and column in characters, a leading UTF-8 byte-order mark not counted), and any
// read error (csv.Reader would report it without its kind).
type csvInput struct {
	r     io.Reader
	left  int64
	over  bool
	err   error
	utf16 bool

	started bool
	line    int    // line of the next byte
	col     int    // characters since the line began
	carry   []byte // the incomplete sequence a read ended with
	bad     bool
	badLine int
	badCol  int
	badByte byte
}

func (c *csvInput) Read(p []byte) (int, error) {
	if c.left <= 0 {
		var one [1]byte
		if n, _ := c.r.Read(one[:]); n > 0 {
			c.over = true
		}
		c.check(nil, true)
		return 0, io.EOF
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if err != nil && err != io.EOF {
		c.err = err
	}
	c.check(p[:n], err == io.EOF)
	return n, err
}

// check scans the next bytes of the file (eof: there are no more).
func (c *csvInput) check(b []byte, eof bool) {
	if !c.started && len(b) > 0 {
		c.started = true
		if bytes.HasPrefix(b, []byte{0xff, 0xfe}) || bytes.HasPrefix(b, []byte{0xfe, 0xff}) {
			c.utf16 = true
		}
		b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	}
	if bytes.IndexByte(b, 0) >= 0 {
		c.utf16 = true
	}
	if c.bad {
		return
	}
	data := b
	if len(c.carry) > 0 {
		data = append(c.carry, b...)
		c.carry = nil
	}
	cut := len(data)
	if !eof {
		// Keep an incomplete last sequence for the next read.
		for k := 1; k <= 3 && k <= len(data); k++ {
			if utf8.RuneStart(data[len(data)-k]) {
				if !utf8.FullRune(data[len(data)-k:]) {
					cut = len(data) - k
				}
				break
			}
		}
		c.carry = append([]byte(nil), data[cut:]...)
	}
	data = data[:cut]
	if !utf8.Valid(data) {
		off := firstInvalidUTF8(data)
		line, col := lineCol(data, off)
		c.bad, c.badByte, c.badLine = true, data[off], c.line+line-1
		c.badCol = col
		if line == 1 {
			c.badCol = c.col + col
		}
		return
	}
	if nl := bytes.Count(data, []byte("\n")); nl > 0 {
		c.line += nl
		c.col = utf8.RuneCount(data[bytes.LastIndexByte(data, '\n')+1:])
	} else {
		c.col += utf8.RuneCount(data)
	}
}

func (l *loader) parseCSV(name string, in io.Reader) (*source, error) {
	r := csv.NewReader(in)
	r.FieldsPerRecord = 0 // the header fixes the number of fields
	header, err := r.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("%s: the file is empty (want a header row naming the columns)", name)
	}
	if err != nil {
		return nil, csvError(name, err, 0, 0)
	}
	s := &source{kind: "csv", file: name, cols: make(map[string]int, len(header))}
	var errs []error
	for i, h := range header {
		h = strings.TrimSpace(h)
		switch {
		case strings.IndexFunc(h, isInvisible) >= 0:
			_, col := r.FieldPos(i)
			errs = append(errs, fmt.Errorf("%s:1:%d: column name \"%s\" holds an invisible character (shown escaped): remove it", name, col, escapeInvisible(h)))
		case h == "":
			errs = append(errs, fmt.Errorf("%s:1: column %d has no name in the header row", name, i+1))
		case strings.ContainsAny(h, "${}"):
			errs = append(errs, fmt.Errorf("%s:1: column name %q: '$', '{' and '}' cannot be used in ${row.COLUMN}", name, h))
		default:
			if prev, dup := s.cols[h]; dup {
				errs = append(errs, fmt.Errorf("%s:1: columns %d and %d are both named %q", name, prev+1, i+1, h))
				continue
			}
			s.cols[h] = i
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	more := 0
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			if len(errs) < maxCSVErrors {
				errs = append(errs, csvError(name, err, len(rec), len(header)))
			} else {
				more++
			}
			var pe *csv.ParseError
			if errors.As(err, &pe) && errors.Is(pe.Err, csv.ErrFieldCount) {
				continue
			}
			break // a quoting error: the rest cannot be trusted
		}
		line, _ := r.FieldPos(0)
		for i := range rec {
			rec[i] = strings.TrimSpace(rec[i])
		}
		s.recs = append(s.recs, rec)
		s.lines = append(s.lines, line)
		if len(s.recs) > l.o.MaxItems {
			return nil, fmt.Errorf("%s: more than %d rows, the limit of a plan", name, l.o.MaxItems)
		}
	}
	if more > 0 {
		errs = append(errs, fmt.Errorf("%s: %d more bad rows", name, more))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(s.recs) == 0 {
		return nil, fmt.Errorf("%s: no rows after the header", name)
	}
	s.n = len(s.recs)
	return s, nil
}

func csvError(name string, err error, got, want int) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		if errors.Is(pe.Err, csv.ErrFieldCount) {
			return fmt.Errorf("%s:%d: the row has %s, the header has %d", name, pe.StartLine, plural(got, "field"), want)
		}
		return fmt.Errorf("%s:%d:%d: %v", name, pe.Line, pe.Column, pe.Err)
	}
	return fmt.Errorf("%s: %v", name, err)
}

func isIdent(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return len(b)
}
