package plan

import (
	"errors"
	"fmt"
	"sort"
)

// maxErrorsPerPos caps the problems reported at one position (a foreach entry can
// otherwise report the same mistake once per row).
const maxErrorsPerPos = 5

// fieldError is a problem with a field: "path: message". DecodeStrict returns them
// wrapped in a *PosError; the loader prefixes their paths.
type fieldError struct {
	path string
	err  error
}

func (e *fieldError) Error() string {
	if e.path == "" {
		return e.err.Error()
	}
	return e.path + ": " + e.err.Error()
}

func (e *fieldError) Unwrap() error { return e.err }

func (l *loader) errf(pos Pos, format string, a ...any) {
	l.report(Where(pos, fmt.Errorf(format, a...)))
}

// report records problems, deduplicated by text and capped per position.
func (l *loader) report(errs ...error) {
	for _, e := range errs {
		for _, f := range flatten(e) {
			var pe *PosError
			if !errors.As(f, &pe) {
				pe = &PosError{Pos: Pos{File: l.file}, Err: f}
				f = pe
			}
			t := f.Error()
			if l.seen[t] {
				continue
			}
			l.seen[t] = true
			if l.perPos[pe.Pos] >= maxErrorsPerPos {
				l.dropped[pe.Pos]++
				continue
			}
			l.perPos[pe.Pos]++
			l.errs = append(l.errs, f)
		}
	}
}

// result joins the problems in position order (file, line, column; then in the order
// they were found).
func (l *loader) result() error {
	if len(l.errs) == 0 {
		return nil
	}
	for p, n := range l.dropped {
		l.errs = append(l.errs, Where(p, fmt.Errorf("%d more problems at this position (not shown)", n)))
	}
	return sortErrors(l.errs)
}

func sortErrors(errs []error) error {
	pos := func(e error) Pos {
		var pe *PosError
		if errors.As(e, &pe) {
			return pe.Pos
		}
		return Pos{}
	}
	sort.SliceStable(errs, func(i, j int) bool {
		a, b := pos(errs[i]), pos(errs[j])
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	return errors.Join(errs...)
}

// prefixErrors puts pre in front of the field path of every error in err.
func prefixErrors(pre string, err error) []error {
	var out []error
	for _, e := range flatten(err) {
		var pe *PosError
		if !errors.As(e, &pe) {
			out = append(out, fmt.Errorf("%s: %w", pre, e))
			continue
		}
		var fe *fieldError
		if errors.As(pe.Err, &fe) {
			p := pre
			if fe.path != "" {
				if fe.path[0] == '[' {
					p += fe.path
				} else {
					p += "." + fe.path
				}
			}
			out = append(out, &PosError{Pos: pe.Pos, Err: &fieldError{path: p, err: fe.err}})
			continue
		}
		out = append(out, &PosError{Pos: pe.Pos, Err: &fieldError{path: pre, err: pe.Err}})
	}
	return out
}

// flatten lists the errors joined in err.
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
