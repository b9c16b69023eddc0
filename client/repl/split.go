package repl

import "strings"

// SplitCommands splits the text of -c into commands at every ';' outside
// a JSON value: a ';' inside double quotes, braces or brackets belongs to
// the command (`{"op":"expr","args":["1;2"]}` stays whole). Commands are
// trimmed; empty ones are dropped.
func SplitCommands(s string) []string {
	var cmds []string
	add := func(c string) {
		if c = strings.TrimSpace(c); c != "" {
			cmds = append(cmds, c)
		}
	}
	depth, start := 0, 0
	inString, escaped := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
		case (c == '}' || c == ']') && depth > 0:
			depth--
		case c == ';' && depth == 0:
			add(s[start:i])
			start = i + 1
		}
	}
	add(s[start:])
	return cmds
}
