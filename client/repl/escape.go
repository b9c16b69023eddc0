package repl

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// safe returns s fit to print on a terminal: control characters, DEL,
// C1 controls, line and paragraph separators, bidirectional overrides and
// bytes that are not UTF-8 are shown escaped (\x1b, \u202e) instead of
// being interpreted. Everything shown comes from the wire, where anyone
// with a connection can put an escape sequence that clears the screen,
// sets the window title or disguises the text around it.
func safe(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x80 && unsafeRune(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		case r == '\\' && i+1 < len(s) && (s[i+1] == 'x' || s[i+1] == 'u'):
			b.WriteString(`\\`) // so that a real "\x1b" cannot pass for an escaped one
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '\\' {
			return true // a closer look, rune by rune, only then
		}
	}
	return false
}

// unsafeRune tells the runes a terminal may act on rather than show.
func unsafeRune(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	case r == '\u2028', r == '\u2029': // line and paragraph separators
		return true
	case r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069', r == '\u200e', r == '\u200f', r == '\u061c':
		return true // bidirectional controls, which reorder the text shown
	}
	return false
}
