package repl

import (
	"io"
	"strings"
	"sync"
)

// lineWriter writes whole lines: concurrent replies never interleave
// mid-line, and a multi-line block (help, status) stays together. With a
// status line (setStatus, a terminal only), every print first clears it
// and then draws it again below what it printed.
type lineWriter struct {
	mu     sync.Mutex
	w      io.Writer
	status string
	// fresh: start every print at the start of a cleared line. The
	// interactive REPL's writer, readline's, clears the prompt before it
	// writes only once readline reads again, not in the moment after a
	// line was sent, when it has drawn the next prompt already.
	fresh bool
}

func (l *lineWriter) print(s string) {
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.status != "" {
		s = clearLine + s + l.status
	} else if l.fresh {
		s = clearLine + s
	}
	_, _ = io.WriteString(l.w, s) // nowhere better to report a failed write
}

// Write prints p as print does, so that a logger can write through l.
func (l *lineWriter) Write(p []byte) (int, error) {
	l.print(string(p))
	return len(p), nil
}

// setStatus replaces the status line; "" removes it.
func (l *lineWriter) setStatus(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s == l.status {
		return
	}
	l.status = s
	_, _ = io.WriteString(l.w, clearLine+s)
}

const (
	// clearLine goes back to the start of the line and clears it.
	clearLine = "\r\x1b[K"

	sgrReset = "\x1b[0m"
	sgrRed   = "\x1b[31m"
	sgrGreen = "\x1b[32m"
	sgrDim   = "\x1b[2m"
)

// palette colours output on a terminal; its zero value colours nothing.
// It only wraps text that safe has already escaped, so wire content can
// never bring escape sequences of its own.
type palette struct{ on bool }

func (p palette) paint(sgr, s string) string {
	if !p.on || s == "" {
		return s
	}
	return sgr + s + sgrReset
}

func (p palette) ok(s string) string  { return p.paint(sgrGreen, s) }
func (p palette) err(s string) string { return p.paint(sgrRed, s) }
func (p palette) dim(s string) string { return p.paint(sgrDim, s) }
