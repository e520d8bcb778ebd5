package plan

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// isUTF16 reports whether data looks like UTF-16 text: a UTF-16 byte-order mark, or
// NUL bytes (which UTF-8 text never holds, and UTF-16 text of ASCII holds in every
// other byte).
func isUTF16(data []byte) bool {
	return bytes.HasPrefix(data, []byte{0xff, 0xfe}) || bytes.HasPrefix(data, []byte{0xfe, 0xff}) || bytes.IndexByte(data, 0) >= 0
}

// lineCol returns the 1-based line and column (in characters) of byte offset off.
func lineCol(data []byte, off int) (int, int) {
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	start := bytes.LastIndexByte(data[:off], '\n') + 1
	return line, 1 + utf8.RuneCount(data[start:off])
}

// checkUTF8 refuses a plan that is not UTF-8 text, at the position of the first
// byte at fault: the YAML parser says only "invalid trailing UTF-8 octet", without a
// position.
func checkUTF8(file string, data []byte) error {
	if isUTF16(data) {
		return Where(Pos{File: file, Line: 1, Col: 1}, errors.New("the file is UTF-16 (a byte-order mark or NUL bytes): the file must be UTF-8; save it as UTF-8"))
	}
	if utf8.Valid(data) {
		return nil
	}
	off := firstInvalidUTF8(data)
	line, col := lineCol(data, off)
	return Where(Pos{File: file, Line: line, Col: col}, fmt.Errorf("byte 0x%02x is not UTF-8 (Latin-1 or Windows-1252 text?): the file must be UTF-8; save it as UTF-8", data[off]))
}

// isInvisible reports runes that show as nothing or as a plain space: format
// characters (zero-width space, joiners, byte-order mark, direction marks), spaces
// other than ' ', and control characters.
func isInvisible(r rune) bool {
	return unicode.Is(unicode.Cf, r) || unicode.IsControl(r) || (unicode.IsSpace(r) && r != ' ') || !unicode.IsGraphic(r) && r != ' '
}

// escapeInvisible shows s with every invisible rune written as \uXXXX.
func escapeInvisible(s string) string {
	var b strings.Builder
	for _, r := range s {
		if isInvisible(r) {
			fmt.Fprintf(&b, `\u%04x`, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
