package repl

import (
	"strings"
	"testing"
	"time"

	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/wire"
)

func TestSafe(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"w-3f2a", "w-3f2a"},
		{"2.5", "2.5"},
		{"héllo ✓", "héllo ✓"},
		{"\x1b[2J\x1b[H", `\x1b[2J\x1b[H`},         // clear the screen
		{"\x1b]0;owned\x07", `\x1b]0;owned\x07`},   // set the window title
		{"a\rb\nc\td", `a\x0db\x0ac\x09d`},         // overwrite the line, new lines
		{"\u009b31m", `\u009b31m`},                 // C1 CSI
		{"\x7f", `\x7f`},                           // DEL
		{"abc\u202egnp.exe", `abc\u202egnp.exe`},   // right-to-left override
		{"\u2028", `\u2028`},                       // line separator
		{"bad \xff\xfe utf8", `bad \xff\xfe utf8`}, // not UTF-8
		{`a real \x1b`, `a real \\x1b`},            // cannot pass for an escape
		{`a\b`, `a\b`},                             // a lone backslash stays
	} {
		if got := safe(tc.in); got != tc.want {
			t.Errorf("safe(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzSafe(f *testing.F) {
	for _, s := range []string{"w-1", "\x1b[2J", "\u202e", "\xff", `\x1b`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := safe(s)
		for _, r := range out {
			if unsafeRune(r) {
				t.Fatalf("safe(%q) = %q holds %U", s, out, r)
			}
		}
		if !strings.ContainsRune(s, '\\') && !needsEscape(s) && out != s {
			t.Fatalf("safe(%q) = %q; want it unchanged", s, out)
		}
	})
}

// TestOutputEscapesTheWire: a rogue responder's worker id, result and
// error message, and a rogue dispatcher's status, reach the terminal
// escaped.
func TestOutputEscapesTheWire(t *testing.T) {
	evil := "\x1b]0;pwned\x07\x1b[2J(trusted)"
	r := &client.Result{Worker: evil, Reply: wire.Reply{Result: []byte(`"` + "\\u001b[2J" + `"`)}}
	lines := []string{
		formatReply("add 1 2", r, time.Millisecond, nil),
		formatReply("add 1 2\x1b[2J", nil, time.Millisecond, wire.NewError(503, evil)),
	}
	var sb strings.Builder
	PrintStatus(&sb, []wire.Status{{
		Dispatcher: evil, Version: evil, Strategy: evil, Subject: evil,
		Workers: []wire.WorkerStatus{{ID: evil, State: evil, Reason: evil}},
	}}, time.Now())
	lines = append(lines, sb.String())
	st := newRandomStats()
	st.add(r, time.Millisecond, nil)
	st.add(nil, time.Millisecond, wire.NewError(500, evil))
	lines = append(lines, st.summary(palette{}, 2, 2, time.Second))
	// In colour, our own codes are the only escape sequences.
	color := palette{on: true}
	ours := strings.NewReplacer(sgrReset, "", sgrRed, "", sgrGreen, "", sgrDim, "")
	lines = append(lines,
		ours.Replace(color.reply("add 1 2", r, time.Millisecond, nil)),
		ours.Replace(color.reply("add 1 2\x1b[2J", nil, time.Millisecond, wire.NewError(503, evil))),
		ours.Replace(st.summary(color, 2, 2, time.Second)))
	for _, l := range lines {
		if strings.ContainsAny(l, "\x1b\x07") {
			t.Errorf("output holds a raw control character: %q", l)
		}
	}
}
