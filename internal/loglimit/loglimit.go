// Package loglimit rate-limits log lines about what comes from outside:
// a flood of bad messages costs the log a line per second per kind (and
// per source), each line saying how many were held back since the last.
package loglimit

import (
	"sync"
	"time"
)

// Every is how often a rate-limited line may be written.
const Every = time.Second

// Limit lets one kind of line through at most once per Every; the lines
// held back in between are counted, and the next line says how many. The
// zero value is ready to use.
type Limit struct {
	mu   sync.Mutex
	next time.Time
	held int
}

// Allow tells whether a line may be written at now, and how many were
// held back since the last one.
func (l *Limit) Allow(now time.Time) (held int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.next) {
		l.held++
		return 0, false
	}
	held, l.held = l.held, 0
	l.next = now.Add(Every)
	return held, true
}

// MaxSources bounds the sources a PerSource tells apart; the lines of
// any further source share one limit.
const MaxSources = 1024

// PerSource is a Limit for each source (a client's name, a worker id, a
// subject's first tokens), so that one source's flood does not hide
// another's line, with at most MaxSources of them: the sources beyond it
// share one limit. The zero value is ready to use.
type PerSource struct {
	mu      sync.Mutex
	sources map[string]*source
	rest    Limit     // for the sources beyond MaxSources
	swept   time.Time // when the full table may be swept again
}

type source struct {
	next time.Time
	held int
}

// Allow tells whether a line about src may be written at now, and how
// many lines about it were held back since the last one. A source whose
// last line is over Every old is forgotten when the table is full.
func (p *PerSource) Allow(src string, now time.Time) (held int, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.sources[src]
	if s == nil {
		if p.sources == nil {
			p.sources = make(map[string]*source)
		}
		if len(p.sources) >= MaxSources && !now.Before(p.swept) {
			p.forgetLocked(now)
			p.swept = now.Add(Every)
		}
		if len(p.sources) >= MaxSources {
			return p.rest.Allow(now)
		}
		s = &source{}
		p.sources[src] = s
	}
	if now.Before(s.next) {
		s.held++
		return 0, false
	}
	held, s.held = s.held, 0
	s.next = now.Add(Every)
	return held, true
}

// forgetLocked drops the sources free to log again at now with nothing
// held back: forgetting them loses no count.
func (p *PerSource) forgetLocked(now time.Time) {
	for k, s := range p.sources {
		if !now.Before(s.next) && s.held == 0 {
			delete(p.sources, k)
		}
	}
}

// Len is how many sources are told apart now.
func (p *PerSource) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sources)
}
