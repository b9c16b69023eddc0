package sim

import (
	"fmt"
	"hash"
	"hash/fnv"
	"io"
	"strconv"
	"strings"
)

// trace keeps the run's events as readable lines: all of them when asked
// to print them, else the last few, for a failure's story. A hash of every
// line, kept either way, tells two runs of a seed apart.
type trace struct {
	out  io.Writer // every line, as it comes; nil: none
	ring []string  // the last lines
	next int
	full bool
	h    hash.Hash64
	n    int
}

const ringLines = 50000

func newTrace(out io.Writer) *trace {
	return &trace{out: out, ring: make([]string, ringLines), h: fnv.New64a()}
}

// line records one event at now. The hash covers the line's words, not
// its layout.
func (t *trace) line(now Time, text string) {
	l := stamp(now) + " " + text
	t.n++
	t.h.Write([]byte(l))
	t.h.Write([]byte{'\n'})
	if t.out != nil {
		io.WriteString(t.out, l+"\n")
	}
	t.ring[t.next] = l
	t.next++
	if t.next == len(t.ring) {
		t.next, t.full = 0, true
	}
}

// last returns the last n lines, oldest first.
func (t *trace) last(n int) []string {
	var all []string
	if t.full {
		all = append(all, t.ring[t.next:]...)
	}
	all = append(all, t.ring[:t.next]...)
	if len(all) > n {
		all = all[len(all)-n:]
	}
	return all
}

func (t *trace) sum() string { return fmt.Sprintf("%016x", t.h.Sum64()) }

// stamp writes a simulated time as seconds with microseconds: 12.345678.
func stamp(t Time) string {
	us := int64(t / 1000)
	s := strconv.FormatInt(us/1e6, 10)
	frac := strconv.FormatInt(us%1e6, 10)
	return strings.Repeat(" ", max(0, 3-len(s))) + s + "." + strings.Repeat("0", 6-len(frac)) + frac
}

// tracef records an event, formatted, unless the run keeps no trace lines
// (the fast path of a hunt: only the hash and ring are then skipped too).
func (s *Sim) tracef(format string, args ...any) {
	if s.quiet {
		return
	}
	s.trace.line(s.clock.now, fmt.Sprintf(format, args...))
}
