package bench

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// DefaultLineEvery is how often a ProgressPrinter writes a line when its
// writer is not a terminal.
const DefaultLineEvery = 5 * time.Second

// ProgressPrinter shows runs' progress on w: a bar redrawn in place when w is
// a terminal, otherwise a plain line at most every LineEvery.
type ProgressPrinter struct {
	W         io.Writer
	TTY       bool
	LineEvery time.Duration // 0 = DefaultLineEvery

	mu       sync.Mutex
	lastLine time.Time
	drawn    bool
}

// Func returns a Config.Progress callback that labels its output.
func (p *ProgressPrinter) Func(label string) func(Progress) {
	return func(pr Progress) { p.show(label, pr) }
}

func (p *ProgressPrinter) show(label string, pr Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.TTY {
		if pr.Final {
			if p.drawn {
				fmt.Fprint(p.W, "\r\033[K")
				p.drawn = false
			}
			return
		}
		fmt.Fprint(p.W, "\r\033[K"+barLine(label, pr))
		p.drawn = true
		return
	}
	every := p.LineEvery
	if every <= 0 {
		every = DefaultLineEvery
	}
	if pr.Final || time.Since(p.lastLine) < every {
		return
	}
	p.lastLine = time.Now()
	fmt.Fprintln(p.W, statusLine(label, pr))
}

// fraction is how far the run is, 0 to 1, or -1 if unknown.
func (pr Progress) fraction() float64 {
	f := -1.0
	if pr.Duration > 0 {
		f = pr.Elapsed.Seconds() / pr.Duration.Seconds()
	}
	if pr.Requests > 0 {
		f = max(f, float64(pr.Done)/float64(pr.Requests))
	}
	return min(f, 1)
}

func statusLine(label string, pr Progress) string {
	var b strings.Builder
	if label != "" {
		b.WriteString(label + ": ")
	}
	if pr.Warmup {
		fmt.Fprintf(&b, "warming up (%.1fs left)", -pr.Elapsed.Seconds())
		return b.String()
	}
	if f := pr.fraction(); f >= 0 {
		fmt.Fprintf(&b, "%3.0f%% ", f*100)
	}
	fmt.Fprintf(&b, "%.1fs %d replies %.0f req/s", pr.Elapsed.Seconds(), pr.Done, pr.Rate)
	if pr.Errors > 0 {
		fmt.Fprintf(&b, " %d errors", pr.Errors)
	}
	if pr.Missed > 0 {
		fmt.Fprintf(&b, " %d missed", pr.Missed)
	}
	return b.String()
}

func barLine(label string, pr Progress) string {
	const width = 24
	f := pr.fraction()
	bar := strings.Repeat("·", width)
	if f >= 0 && !pr.Warmup {
		n := int(f * width)
		bar = strings.Repeat("█", n) + strings.Repeat("·", width-n)
	}
	return "[" + bar + "] " + statusLine(label, pr)
}
