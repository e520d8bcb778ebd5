package main

import (
	"io"
	"os"

	"provision/runner"
)

// palette colours verbs and failures on a terminal. The zero value writes plain
// text. Colour is off when NO_COLOR is set (https://no-color.org), when TERM is
// dumb, and when the output is not a terminal.
type palette struct{ on bool }

func newPalette(w io.Writer) palette {
	return palette{on: isTerminal(w) && colourAllowed(os.Getenv)}
}

func colourAllowed(getenv func(string) string) bool {
	return getenv("NO_COLOR") == "" && getenv("TERM") != "dumb"
}

const (
	sgrReset  = "\033[0m"
	sgrBold   = "\033[1m"
	sgrRed    = "\033[31m"
	sgrGreen  = "\033[32m"
	sgrYellow = "\033[33m"
	sgrBlue   = "\033[34m"
	sgrMag    = "\033[35m"
	sgrCyan   = "\033[36m"
	sgrBRed   = "\033[1;31m"
)

func (p palette) wrap(sgr, s string) string {
	if !p.on || s == "" {
		return s
	}
	return sgr + s + sgrReset
}

// verb colours text standing for a verb: create green, adopt cyan, update
// yellow, retry magenta, remove red; skip stays plain.
func (p palette) verb(v runner.Verb, s string) string {
	switch v {
	case runner.Create:
		return p.wrap(sgrGreen, s)
	case runner.Adopt:
		return p.wrap(sgrCyan, s)
	case runner.Update:
		return p.wrap(sgrYellow, s)
	case runner.Retry:
		return p.wrap(sgrMag, s)
	case runner.Remove:
		return p.wrap(sgrRed, s)
	}
	return s
}

func (p palette) fail(s string) string  { return p.wrap(sgrBRed, s) }
func (p palette) done(s string) string  { return p.wrap(sgrGreen, s) }
func (p palette) doubt(s string) string { return p.wrap(sgrYellow, s) }
func (p palette) bold(s string) string  { return p.wrap(sgrBold, s) }
