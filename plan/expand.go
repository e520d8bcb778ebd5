package plan

import (
	"crypto/sha256"
	"fmt"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// An entry is compiled once into a template (tmpl): constant subtrees are kept as they
// are, scalars without row references are evaluated once, and only the scalars that
// depend on the row are evaluated per row. An item's tree is made of fresh nodes for
// everything that depends on the row (allocated in slabs) and of the template's
// constant nodes, which are never modified.

// tnode is a node of a template.
type tnode struct {
	src   *yaml.Node
	kids  []*tnode
	sc    *scalarT   // set for scalars that depend on the row
	fixed *yaml.Node // the node to use when !dyn
	hsh   string     // hash text of a fixed scalar that was interpolated
	sec   bool       // fixed scalar holds a secret
	dyn   bool
	id    int    // dynamic scalar: index in tmpl.dyns
	path  *fpath // dynamic scalar: its field path, for errors
}

type tmpl struct {
	sc    *scope
	root  *tnode
	dyns  []*tnode
	nodes int // nodes allocated per instance
	slots int // Content slots allocated per instance
	prog  []hchunk
	refs  []Ref // references of the scalars that do not depend on the row
	shape *shape
	ok    bool
}

// hchunk is a piece of the canonical text an item's hash is computed over: constant
// bytes, or (dyn >= 0) the value of a dynamic scalar.
type hchunk struct {
	lit []byte
	dyn int
}

// compileTmpl compiles a tree; errors are reported with where as the field path prefix.
func (l *loader) compileTmpl(n *yaml.Node, sc *scope, where string) *tmpl {
	t := &tmpl{sc: sc, ok: true}
	t.root = l.compileNode(t, n, &fpath{key: where, idx: -1})
	if t.ok {
		t.prog = t.hashProgram()
		t.shape = &shape{root: t.root, nodes: t.nodes, slots: t.slots}
	}
	return t
}

// hasRefsBelow reports whether a scalar under n holds "${".
func hasRefsBelow(n *yaml.Node) bool {
	if n.Kind == yaml.ScalarNode {
		return hasRefSyntax(n.Value)
	}
	for i, c := range n.Content {
		if n.Kind == yaml.MappingNode && i%2 == 0 {
			continue // keys are never interpolated
		}
		if hasRefsBelow(c) {
			return true
		}
	}
	return false
}

func (l *loader) compileNode(t *tmpl, n *yaml.Node, p *fpath) *tnode {
	tn := &tnode{src: n, fixed: n}
	if hasRefsBelow(n) {
		l.compileInto(t, tn, n, p)
	}
	return tn
}

// compileInto compiles n, which holds references, into tn (src and fixed already n).
func (l *loader) compileInto(t *tmpl, tn *tnode, n *yaml.Node, p *fpath) {
	switch n.Kind {
	case yaml.ScalarNode:
		pos := l.pos(n)
		cs, err := t.sc.compileScalar(n.Value, pos)
		if err != nil {
			l.errf(pos, "%s: %v", p, err)
			t.ok = false
			return
		}
		l.noteOrigin(pos, cs)
		if cs.rowDep {
			tn.dyn, tn.sc, tn.id, tn.path = true, cs, len(t.dyns), p
			t.dyns = append(t.dyns, tn)
			t.nodes++
			return
		}
		var o evalOut
		if err := t.sc.eval(cs, nil, pos, &o); err != nil {
			l.errf(pos, "%s: %v", p, err)
			t.ok = false
			return
		}
		t.refs = append(t.refs, cs.refs...)
		c := *n
		c.Value = string(o.fin)
		c.Tag, c.Style = tagFor(cs, o.secret, n)
		tn.fixed, tn.hsh, tn.sec = &c, string(o.hsh), o.secret
	case yaml.MappingNode, yaml.SequenceNode:
		slab := make([]tnode, len(n.Content))
		tn.kids = make([]*tnode, len(n.Content))
		changed := false
		for i, ch := range n.Content {
			k := &slab[i]
			tn.kids[i] = k
			k.src, k.fixed = ch, ch
			if n.Kind == yaml.MappingNode && i%2 == 0 || !hasRefsBelow(ch) {
				continue // keys are never interpolated; constant values are used as they are
			}
			if n.Kind == yaml.MappingNode {
				l.compileInto(t, k, ch, &fpath{parent: p, key: n.Content[i-1].Value, idx: -1})
			} else {
				l.compileInto(t, k, ch, &fpath{parent: p, idx: i})
			}
			tn.dyn = tn.dyn || k.dyn
			changed = changed || k.fixed != ch
		}
		if tn.dyn {
			t.nodes++
			t.slots += len(n.Content)
		} else if changed {
			c := *n
			c.Content = make([]*yaml.Node, len(n.Content))
			for i, k := range tn.kids {
				c.Content[i] = k.fixed
			}
			tn.fixed = &c
		}
	}
}

// tagFor returns the tag and style of an interpolated scalar: secrets are marked;
// an explicit tag (!!str ${row.id}) is kept; a scalar that is exactly one reference,
// quoted or not, is left untagged and plain so that decoding resolves its type from
// the value ("${row.port}" fills an int field, and a string one); anything else is a
// string.
func tagFor(cs *scalarT, secret bool, src *yaml.Node) (string, yaml.Style) {
	switch {
	case secret:
		return SecretTag, src.Style
	case src.Style&yaml.TaggedStyle != 0:
		return src.Tag, src.Style
	case cs.whole && !cs.keepEsc:
		return "", 0
	}
	return "!!str", src.Style
}

// dval is a dynamic scalar's value for one row.
type dval struct {
	fin    string
	tag    string
	style  yaml.Style
	h0, h1 int // hash text in rowEval.hsh
}

// rowEval holds one row's dynamic values; reused from row to row.
type rowEval struct {
	vals []dval
	o    evalOut
}

// evalRow evaluates every dynamic scalar of t for the current row.
func (l *loader) evalRow(t *tmpl, rc *rowCtx, re *rowEval) bool {
	if cap(re.vals) < len(t.dyns) {
		re.vals = make([]dval, len(t.dyns))
	}
	re.vals = re.vals[:len(t.dyns)]
	re.o.hsh = re.o.hsh[:0]
	re.o.refs = re.o.refs[:0]
	for i, tn := range t.dyns {
		pos := l.pos(tn.src)
		re.o.fin = re.o.fin[:0]
		re.o.secret = false
		h0 := len(re.o.hsh)
		if err := t.sc.eval(tn.sc, rc, pos, &re.o); err != nil {
			l.errf(pos, "%s: %v", tn.path, err)
			return false
		}
		re.o.refs = append(re.o.refs, tn.sc.refs...)
		tag, style := tagFor(tn.sc, re.o.secret, tn.src)
		re.vals[i] = dval{fin: string(re.o.fin), tag: tag, style: style, h0: h0, h1: len(re.o.hsh)}
	}
	return true
}

// arena hands out items and row values from slabs.
type arena struct {
	items []Item
	vals  []ival
}

func (a *arena) item() *Item {
	if len(a.items) == 0 {
		a.items = make([]Item, 256)
	}
	it := &a.items[0]
	a.items = a.items[1:]
	return it
}

// rowVals copies one row's dynamic values into a slab.
func (a *arena) rowVals(vals []dval) []ival {
	if len(vals) == 0 {
		return nil
	}
	if len(a.vals) < len(vals) {
		a.vals = make([]ival, max(1024, len(vals)))
	}
	out := a.vals[:len(vals):len(vals)]
	a.vals = a.vals[len(vals):]
	for i, v := range vals {
		out[i] = ival{fin: v.fin, sec: v.tag == SecretTag}
	}
	return out
}

// shape is what an item needs of its entry's template to build its field tree: the
// tree and the number of nodes and Content slots an instance takes. It holds no row
// source, so items do not keep a CSV file's rows alive.
type shape struct {
	root         *tnode
	nodes, slots int
}

// ival is one dynamic scalar's value for one item.
type ival struct {
	fin string
	sec bool // holds a resolved secret
}

// Fields returns the item's fields as a mapping node: the entry's fields (without
// name, depends_on, foreach) deep-merged over the section defaults, with vars, rows
// and secrets substituted. Output references (${outputs.ITEM.KEY}) are left in place.
// Nodes keep the line and column of the text they came from. Scalars that hold a
// resolved secret carry the tag SecretTag.
//
// An item keeps only the values that differ from row to row; each call builds the
// nodes that depend on the row afresh, and nodes that are the same for every row are
// shared between the items of one entry. The tree is read-only. Safe for concurrent
// use. Nil for an item not made by Load.
func (it *Item) Fields() *yaml.Node {
	if it.shape == nil {
		return nil
	}
	sh := it.shape
	if !sh.root.dyn {
		return sh.root.fixed
	}
	b := instance{nodes: make([]yaml.Node, sh.nodes), slots: make([]*yaml.Node, sh.slots)}
	return b.build(sh.root, it.vals)
}

// instance hands out the nodes and Content slots of one item's tree.
type instance struct {
	nodes []yaml.Node
	slots []*yaml.Node
}

func (b *instance) build(tn *tnode, vals []ival) *yaml.Node {
	if !tn.dyn {
		return tn.fixed
	}
	n := &b.nodes[0]
	b.nodes = b.nodes[1:]
	*n = *tn.src
	n.Anchor = ""
	if tn.sc != nil {
		v := &vals[tn.id]
		n.Value = v.fin
		n.Tag, n.Style = tagFor(tn.sc, v.sec, tn.src)
		return n
	}
	n.Content = b.slots[:len(tn.kids):len(tn.kids)]
	b.slots = b.slots[len(tn.kids):]
	for i, k := range tn.kids {
		n.Content[i] = b.build(k, vals)
	}
	return n
}

// Canonical text of a tree, hashed into Item.Hash: mapping keys sorted, every node
// tagged with its kind and every scalar with its type and length, so that neither key
// order nor quoting nor layout changes a hash, while a change of type ("80" vs 80)
// does. Secret values never enter it: secret scalars contribute their reference text.

const hashPrefix = "provision/plan item v1\x00"

func (t *tmpl) hashProgram() []hchunk {
	var prog []hchunk
	var lit []byte
	var walk func(tn *tnode)
	walk = func(tn *tnode) {
		if !tn.dyn {
			lit = canonFixed(lit, tn)
			return
		}
		if tn.sc != nil {
			prog = append(prog, hchunk{lit: lit, dyn: -1}, hchunk{dyn: tn.id})
			lit = nil
			return
		}
		if tn.src.Kind == yaml.SequenceNode {
			lit = append(lit, '[')
			for _, k := range tn.kids {
				walk(k)
			}
			lit = append(lit, ']')
			return
		}
		lit = append(lit, '{')
		for _, i := range sortedPairs(tn.src) {
			walk(tn.kids[i])
			walk(tn.kids[i+1])
		}
		lit = append(lit, '}')
	}
	walk(t.root)
	prog = append(prog, hchunk{lit: lit, dyn: -1})
	out := prog[:0]
	for _, c := range prog {
		if c.dyn < 0 && len(c.lit) == 0 {
			continue
		}
		out = append(out, c)
	}
	return out
}

// sortedPairs returns the key indices of a mapping node in key order (stable).
func sortedPairs(n *yaml.Node) []int {
	idx := make([]int, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		idx = append(idx, i)
	}
	less := func(a, b int) bool { return n.Content[a].Value < n.Content[b].Value }
	if len(idx) > 16 {
		sort.SliceStable(idx, func(a, b int) bool { return less(idx[a], idx[b]) })
		return idx
	}
	for i := 1; i < len(idx); i++ {
		for j := i; j > 0 && less(idx[j], idx[j-1]); j-- {
			idx[j], idx[j-1] = idx[j-1], idx[j]
		}
	}
	return idx
}

func canonFixed(b []byte, tn *tnode) []byte {
	if tn.kids == nil {
		switch {
		case tn.fixed == tn.src:
			return canonNode(b, tn.src)
		case tn.sec:
			return canonScalar(b, 's', "", tn.hsh)
		}
		return canonScalar(b, letterOf(tn.fixed), tn.fixed.Tag, tn.hsh)
	}
	if tn.src.Kind == yaml.SequenceNode {
		b = append(b, '[')
		for _, k := range tn.kids {
			b = canonFixed(b, k)
		}
		return append(b, ']')
	}
	b = append(b, '{')
	for _, i := range sortedPairs(tn.src) {
		b = canonFixed(b, tn.kids[i])
		b = canonFixed(b, tn.kids[i+1])
	}
	return append(b, '}')
}

// canonNode writes the canonical text of a tree that has no interpolation.
func canonNode(b []byte, n *yaml.Node) []byte {
	switch n.Kind {
	case yaml.ScalarNode:
		return canonScalar(b, letterOf(n), n.Tag, escapeRefs(n.Value))
	case yaml.SequenceNode:
		b = append(b, '[')
		for _, c := range n.Content {
			b = canonNode(b, c)
		}
		return append(b, ']')
	case yaml.MappingNode:
		b = append(b, '{')
		for _, i := range sortedPairs(n) {
			b = canonNode(b, n.Content[i])
			b = canonNode(b, n.Content[i+1])
		}
		return append(b, '}')
	case yaml.AliasNode:
		if n.Alias != nil {
			return canonNode(b, n.Alias)
		}
	}
	return append(b, '~')
}

func canonScalar(b []byte, letter byte, tag, v string) []byte {
	b = append(b, letter)
	if letter == 'o' {
		b = strconv.AppendInt(b, int64(len(tag)), 10)
		b = append(b, ':')
		b = append(b, tag...)
	}
	b = strconv.AppendInt(b, int64(len(v)), 10)
	b = append(b, ':')
	return append(b, v...)
}

// letterOf is the type letter of a scalar: the type it decodes as.
func letterOf(n *yaml.Node) byte {
	if n.Tag == SecretTag {
		return 's'
	}
	switch n.ShortTag() {
	case "!!str":
		return 's'
	case "!!int":
		return 'i'
	case "!!float":
		return 'f'
	case "!!bool":
		return 'b'
	case nullTag:
		return 'n'
	case "!!timestamp":
		return 't'
	case "!!binary":
		return 'x'
	}
	return 'o'
}

func (l *loader) hashItem(t *tmpl, section, name string, re *rowEval) [32]byte {
	b := append(l.hbuf[:0], hashPrefix...)
	b = append(b, section...)
	b = append(b, 0)
	b = append(b, name...)
	b = append(b, 0)
	for _, c := range t.prog {
		if c.dyn < 0 {
			b = append(b, c.lit...)
			continue
		}
		v := &re.vals[c.dyn]
		var letter byte = 's'
		if v.tag != "!!str" {
			tmp := yaml.Node{Kind: yaml.ScalarNode, Tag: v.tag, Value: v.fin}
			letter = letterOf(&tmp)
		}
		b = canonScalar(b, letter, v.tag, string(re.o.hsh[v.h0:v.h1]))
	}
	l.hbuf = b
	return sha256.Sum256(b)
}

// instantiateOnce compiles and evaluates a tree that has no rows (endpoints, foreach).
func (l *loader) instantiateOnce(n *yaml.Node, sc *scope, where string) (*yaml.Node, bool) {
	t := l.compileTmpl(n, sc, where)
	if !t.ok {
		return nil, false
	}
	return t.root.fixed, true
}

// merge deep-merges over onto base: mappings key by key (over wins), anything else
// is replaced. Nodes keep their positions; neither input is modified.
func merge(base, over *yaml.Node) *yaml.Node {
	if base.Kind != yaml.MappingNode || over.Kind != yaml.MappingNode {
		return over
	}
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: over.Tag, Style: over.Style, Line: over.Line, Column: over.Column}
	out.Content = make([]*yaml.Node, 0, len(base.Content)+len(over.Content))
	idx := make(map[string]int, len(base.Content)/2)
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

// metaKeys are the entry keys that are not fields.
var metaKeys = map[string]bool{"name": true, "depends_on": true, "foreach": true}

// nameInfo is where an item name was first given: the entry's name field (shared by
// every row of the entry, so the map holds a pointer, not a copy) and the row.
type nameInfo struct {
	at     *Pos
	origin string
}

type pendingDeps struct {
	item  *Item
	where string
	deps  []depRef
}

type depRef struct {
	pattern string
	pos     Pos
}

// entry expands one entry of a section into items.
func (l *loader) entry(section string, idx int, e, defaults *yaml.Node) {
	where := fmt.Sprintf("%s.items[%d]", section, idx)
	if e.Kind != yaml.MappingNode {
		l.errf(l.pos(e), "%s: want a mapping with a name and fields", where)
		l.brokenNames = true
		return
	}
	nameNode, depsNode, foreachNode, fields := l.splitEntry(e, where)
	if nameNode == nil || nameNode.Kind != yaml.ScalarNode || nameNode.Value == "" {
		if nameNode == nil {
			l.errf(l.pos(e), "%s.name: required", where)
		} else {
			l.errf(l.pos(nameNode), "%s.name: want a name such as store-${row.id}", where)
		}
		l.brokenNames = true
		return
	}
	var srcs []*source
	rows := 1.0
	if foreachNode != nil {
		var ok bool
		srcs, ok = l.foreach(where+".foreach", foreachNode)
		if !ok {
			l.brokenNames = true
			return
		}
		for _, s := range srcs {
			rows *= float64(s.n)
		}
	} else if !l.checkExpansion(e, where, 1) {
		return
	}
	l.reserveNames(rows)
	namePos := l.pos(nameNode)
	c := compiledEntry{section: section, where: where, e: e, nameAt: &namePos}
	c.nsc = scope{l: l, srcs: srcs, where: "item names"}
	var ok bool
	if c.name, c.constName, ok = l.entryName(&c.nsc, nameNode.Value, c.nameAt, where, rows); !ok {
		return
	}
	c.dsc = scope{l: l, srcs: srcs, where: "depends_on"}
	c.deps, c.staticDeps, c.depsDyn = l.entryDeps(&c.dsc, depsNode, where)
	if len(c.deps) > 0 && rows >= 1024 {
		l.pending = slices.Grow(l.pending, int(rows))
	}
	if defaults != nil {
		fields = merge(defaults, fields)
	}
	fsc := &scope{l: l, srcs: srcs, secrets: true, outputs: true, where: "item fields"}
	c.fields = l.compileTmpl(fields, fsc, where)
	l.expandRows(&c, srcs)
}

// splitEntry separates an entry's meta keys (name, depends_on, foreach) from its
// fields, reporting duplicate keys.
func (l *loader) splitEntry(e *yaml.Node, where string) (nameNode, depsNode, foreachNode, fields *yaml.Node) {
	fields = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: e.Line, Column: e.Column}
	fields.Content = make([]*yaml.Node, 0, len(e.Content))
	for i := 0; i+1 < len(e.Content); i += 2 {
		k, v := e.Content[i], e.Content[i+1]
		if dupKey(e, i) {
			l.errf(l.pos(k), "%s: duplicate key %q", where, k.Value)
			continue
		}
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
	return nameNode, depsNode, foreachNode, fields
}

// compiledEntry is an entry ready to expand row by row: its name, depends_on and
// fields compiled against its foreach sources.
type compiledEntry struct {
	section, where string
	e              *yaml.Node
	nsc, dsc       scope // for the name and depends_on
	name           *scalarT
	constName      string // the name when it does not depend on the row
	nameAt         *Pos   // shared by every row's nameInfo
	deps           []depT
	staticDeps     []depRef // the deps that do not depend on the row, evaluated
	depsDyn        bool     // some of deps depend on the row
	fields         *tmpl
}

// depT is a compiled depends_on name or pattern.
type depT struct {
	t   *scalarT
	pos Pos
}

// entryName compiles an entry's name and, when it does not depend on the row,
// evaluates it (a constant name over more than one row is an error). ok is false
// when the entry yields no items.
func (l *loader) entryName(nsc *scope, name string, nameAt *Pos, where string, rows float64) (nameT *scalarT, constName string, ok bool) {
	namePos := *nameAt
	nameT, err := nsc.compileScalar(name, namePos)
	if err != nil {
		l.errf(namePos, "%s.name: %v", where, err)
		l.brokenNames = true
		return nil, "", false
	}
	if nameT.rowDep {
		return nameT, "", true
	}
	var o evalOut
	if err := nsc.eval(nameT, nil, namePos, &o); err != nil {
		l.errf(namePos, "%s.name: %v", where, err)
		l.brokenNames = true
		return nil, "", false
	}
	constName = string(o.fin)
	if rows > 1 {
		l.errf(namePos, "%s.name: %q is the same for all %.0f rows of the foreach: put a row reference such as ${%s.index} in it", where, constName, rows, nsc.srcs[0].as)
		if _, dup := l.names[constName]; !dup && validItemName(constName) {
			l.names[constName] = nameInfo{at: nameAt}
		}
		return nil, "", false
	}
	return nameT, constName, true
}

// entryDeps compiles an entry's depends_on (names or globs, with vars and rows) and
// evaluates the ones that do not depend on the row.
func (l *loader) entryDeps(dsc *scope, depsNode *yaml.Node, where string) (deps []depT, static []depRef, dyn bool) {
	if depsNode != nil {
		var list []*yaml.Node
		switch depsNode.Kind {
		case yaml.ScalarNode:
			list = []*yaml.Node{depsNode}
		case yaml.SequenceNode:
			list = depsNode.Content
		default:
			l.errf(l.pos(depsNode), "%s.depends_on: want an item name or a list of item names and patterns", where)
		}
		// Where list[i] is, for messages only (built then: this runs for every entry).
		dw := func(i int) string {
			if depsNode.Kind == yaml.SequenceNode {
				return fmt.Sprintf("%s.depends_on[%d]", where, i)
			}
			return where + ".depends_on"
		}
		for i, d := range list {
			if d.Kind != yaml.ScalarNode || d.Value == "" {
				l.errf(l.pos(d), "%s: want an item name or a pattern such as store-*", dw(i))
				continue
			}
			t, err := dsc.compileScalar(d.Value, l.pos(d))
			if err != nil {
				l.errf(l.pos(d), "%s: %v", dw(i), err)
				continue
			}
			deps = append(deps, depT{t, l.pos(d)})
		}
	}
	for _, d := range deps {
		if d.t.rowDep {
			dyn = true
			continue
		}
		var o evalOut
		if err := dsc.eval(d.t, nil, d.pos, &o); err != nil {
			l.errf(d.pos, "%s.depends_on: %v", where, err)
			continue
		}
		static = append(static, depRef{string(o.fin), d.pos})
	}
	return deps, static, dyn
}

// expandRows makes an item of each row of c's foreach sources (one row without):
// name checked and claimed, fields evaluated, depends_on and output references
// queued for resolveDeps.
func (l *loader) expandRows(c *compiledEntry, srcs []*source) {
	where, t := c.where, c.fields
	rc := newRowCtx(srcs)
	var re rowEval
	var no evalOut
	for more := true; more; more = rc.next() {
		name := c.constName
		if c.name.rowDep {
			no.fin, no.hsh = no.fin[:0], no.hsh[:0]
			if err := c.nsc.eval(c.name, rc, *c.nameAt, &no); err != nil {
				l.errf(*c.nameAt, "%s.name: %v", where, err)
				l.brokenNames = true
				continue
			}
			name = string(no.fin)
		}
		origin := rc.origin()
		if !validItemName(name) {
			l.errf(*c.nameAt, "%s.name: %q%s: want 1-200 letters, digits or . _ @ / : + -", where, name, inRow(origin))
			l.brokenNames = true
			continue
		}
		if prev, dup := l.names[name]; dup {
			l.errf(*c.nameAt, "%s.name: duplicate item name %q%s, first at %s%s", where, name, inRow(origin), *prev.at, inRow(prev.origin))
			continue
		}
		l.names[name] = nameInfo{at: c.nameAt, origin: origin}
		if !t.ok || !l.evalRow(t, rc, &re) {
			continue
		}
		it := l.arena.item()
		it.Section, it.Name, it.Pos, it.Origin = c.section, name, l.pos(c.e), origin
		it.pol = l.pol
		it.shape, it.vals = t.shape, l.arena.rowVals(re.vals)
		it.Hash = l.hashItem(t, c.section, name, &re)
		it.Refs = joinRefs(t.refs, re.o.refs)
		deps := c.staticDeps
		if c.depsDyn {
			deps = l.rowDeps(c, rc, &no)
		}
		if len(deps) > 0 || len(it.Refs) > 0 {
			l.pending = append(l.pending, pendingDeps{item: it, where: where, deps: deps})
		}
		l.p.Items = append(l.p.Items, it)
	}
}

// rowDeps returns c's depends_on for the current row of rc: the static ones, then
// the row-dependent ones evaluated. o is scratch space.
func (l *loader) rowDeps(c *compiledEntry, rc *rowCtx, o *evalOut) []depRef {
	deps := append([]depRef(nil), c.staticDeps...)
	for _, d := range c.deps {
		if !d.t.rowDep {
			continue
		}
		o.fin, o.hsh = o.fin[:0], o.hsh[:0]
		if err := c.dsc.eval(d.t, rc, d.pos, o); err != nil {
			l.errf(d.pos, "%s.depends_on: %v", c.where, err)
			continue
		}
		deps = append(deps, depRef{string(o.fin), d.pos})
	}
	return deps
}

// reserveNames makes room in l.names (and the plan's items) for rows more names at
// once: a map that grows one name at a time rehashes every name it holds at each
// doubling, which is a tenth of the time to validate a plan at the item limit. Small
// entries are left to the map.
func (l *loader) reserveNames(rows float64) {
	if rows < 1024 {
		return
	}
	l.p.Items = slices.Grow(l.p.Items, int(rows))
	if float64(len(l.names))+rows <= float64(l.namesRoom) {
		return
	}
	room := min(2*(len(l.names)+int(rows)), max(l.o.MaxItems, len(l.names)+int(rows)))
	names := make(map[string]nameInfo, room)
	for k, v := range l.names {
		names[k] = v
	}
	l.names, l.namesRoom = names, room
}

func inRow(origin string) string {
	if origin == "" {
		return ""
	}
	return " from " + origin
}

// joinRefs returns the distinct references of a and b, in order, in a new slice.
func joinRefs(a, b []Ref) []Ref {
	if len(a)+len(b) == 0 {
		return nil
	}
	out := make([]Ref, 0, len(a)+len(b))
	for _, lst := range [][]Ref{a, b} {
	next:
		for _, r := range lst {
			for _, o := range out {
				if o.Item == r.Item && o.Key == r.Key {
					continue next
				}
			}
			out = append(out, r)
		}
	}
	return out
}

// validItemName: 1-200 of [A-Za-z0-9._@/:+-].
func validItemName(s string) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._@/:+-", c) >= 0) {
			return false
		}
	}
	return true
}

func isGlob(s string) bool { return strings.ContainsAny(s, "*?[") }

// resolveDeps turns depends_on names and patterns into item names, and checks output
// references. When some entry could not be expanded, unknown names are not reported
// (they may be that entry's).
func (l *loader) resolveDeps() {
	g := nameGlobber{names: l.names, cache: map[string][]string{}}
	// setCache holds the resolved set of each list of patterns, for the items the
	// set does not contain (an item never depends on itself).
	setCache := map[string][]string{}
	for _, pd := range l.pending {
		it := pd.item
		l.checkOutputRefs(pd)
		if len(pd.deps) == 0 {
			continue
		}
		if len(pd.deps) == 1 && !isGlob(pd.deps[0].pattern) {
			l.oneDep(pd)
			continue
		}
		var key strings.Builder
		for _, d := range pd.deps {
			key.WriteString(d.pattern)
			key.WriteByte(0)
		}
		if set, ok := setCache[key.String()]; ok && !containsSorted(set, it.Name) {
			it.DependsOn = set
			continue
		}
		set, selfMatched := l.depSet(pd, &g)
		if len(set) == 0 {
			continue
		}
		out := make([]string, 0, len(set))
		for n := range set {
			out = append(out, n)
		}
		sort.Strings(out)
		it.DependsOn = out
		if !selfMatched && !set[it.Name] {
			setCache[key.String()] = out
		}
	}
}

// checkOutputRefs checks the ${outputs...} references of a pending item: an item
// cannot use its own outputs, nor those of an item the plan does not have.
func (l *loader) checkOutputRefs(pd pendingDeps) {
	it := pd.item
	for _, r := range it.Refs {
		if r.Item == it.Name {
			l.errf(r.Pos, "%s: ${outputs.%s.%s}: an item cannot use its own outputs", pd.where, r.Item, r.Key)
		} else if _, ok := l.names[r.Item]; !ok && !l.brokenNames {
			l.errf(r.Pos, "%s: ${outputs.%s.%s}: unknown item %q", pd.where, r.Item, r.Key, r.Item)
		}
	}
}

// depSet resolves a pending item's depends_on names and patterns into the set of
// item names, reporting each that names no other item. selfMatched says whether a
// name or pattern matched the item itself (left out of the set).
func (l *loader) depSet(pd pendingDeps, g *nameGlobber) (set map[string]bool, selfMatched bool) {
	it := pd.item
	set = map[string]bool{}
	for _, d := range pd.deps {
		if !isGlob(d.pattern) {
			ok, self := l.literalDep(d, it, pd.where)
			if ok {
				set[d.pattern] = true
			}
			selfMatched = selfMatched || self
			continue
		}
		if !validItemName(strings.Map(func(r rune) rune {
			if strings.ContainsRune("*?[]^\\", r) {
				return 'x'
			}
			return r
		}, d.pattern)) {
			l.errf(d.pos, "%s.depends_on: %q is not an item name pattern", pd.where, d.pattern)
			continue
		}
		m, err := g.match(d.pattern)
		if err != nil {
			l.errf(d.pos, "%s.depends_on: pattern %q: %v", pd.where, d.pattern, err)
			continue
		}
		n := 0
		for _, name := range m {
			if name == it.Name {
				selfMatched = true
				continue
			}
			set[name] = true
			n++
		}
		if n == 0 && !l.brokenNames {
			l.errf(d.pos, "%s.depends_on: pattern %q matches no other item", pd.where, d.pattern)
		}
	}
	return set, selfMatched
}

// nameGlobber matches depends_on patterns against the plan's item names, sorted on
// first use so that a pattern only scans the names that share its literal prefix.
// Each pattern's matches are cached.
type nameGlobber struct {
	names  map[string]nameInfo
	sorted []string
	cache  map[string][]string
}

// match returns the item names that pattern matches, in order, or the pattern's
// syntax error.
func (g *nameGlobber) match(pattern string) ([]string, error) {
	if m, ok := g.cache[pattern]; ok {
		return m, nil
	}
	if _, err := path.Match(pattern, ""); err != nil {
		return nil, err
	}
	if g.sorted == nil {
		g.sorted = make([]string, 0, len(g.names))
		for n := range g.names {
			g.sorted = append(g.sorted, n)
		}
		sort.Strings(g.sorted)
	}
	prefix := pattern[:strings.IndexAny(pattern, "*?[\\")]
	i := sort.SearchStrings(g.sorted, prefix)
	var m []string
	for ; i < len(g.sorted) && strings.HasPrefix(g.sorted[i], prefix); i++ {
		if ok, _ := path.Match(pattern, g.sorted[i]); ok {
			m = append(m, g.sorted[i])
		}
	}
	g.cache[pattern] = m
	return m, nil
}

// oneDep resolves the most common depends_on, one item name, as resolveDeps does
// (the same checks and messages) without building a set.
func (l *loader) oneDep(pd pendingDeps) {
	if ok, _ := l.literalDep(pd.deps[0], pd.item, pd.where); ok {
		pd.item.DependsOn = []string{pd.deps[0].pattern}
	}
}

// literalDep checks a depends_on item name (not a pattern) of item it, reporting
// what is wrong with it at where's depends_on (the message is built only then, as
// this runs for every item): ok when it names another item of the plan, self when
// it names the item itself.
func (l *loader) literalDep(d depRef, it *Item, where string) (ok, self bool) {
	switch {
	case !validItemName(d.pattern):
		l.errf(d.pos, "%s.depends_on: %q is not an item name", where, d.pattern)
	case d.pattern == it.Name:
		l.errf(d.pos, "%s.depends_on: %q is the item itself", where, d.pattern)
		return false, true
	default:
		if _, found := l.names[d.pattern]; found {
			return true, false
		}
		if !l.brokenNames {
			l.errf(d.pos, "%s.depends_on: %q: no item has this name", where, d.pattern)
		}
	}
	return false, false
}

func containsSorted(s []string, v string) bool {
	i := sort.SearchStrings(s, v)
	return i < len(s) && s[i] == v
}

// dupKey reports whether the key at index i of mapping n appeared before it.
func dupKey(n *yaml.Node, i int) bool {
	for j := 0; j < i; j += 2 {
		if n.Content[j].Value == n.Content[i].Value {
			return true
		}
	}
	return false
}
