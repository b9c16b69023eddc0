package loglimit

import (
	"strconv"
	"testing"
	"time"
)

func TestLimit(t *testing.T) {
	var l Limit
	t0 := time.Unix(100, 0)
	if held, ok := l.Allow(t0); !ok || held != 0 {
		t.Fatalf("first Allow = %d, %v; want 0, true", held, ok)
	}
	for i := range 5 {
		if _, ok := l.Allow(t0.Add(time.Duration(i) * time.Millisecond)); ok {
			t.Fatal("a second line within Every was allowed")
		}
	}
	if held, ok := l.Allow(t0.Add(Every)); !ok || held != 5 {
		t.Fatalf("Allow after Every = %d, %v; want 5, true", held, ok)
	}
}

func TestPerSource(t *testing.T) {
	var p PerSource
	t0 := time.Unix(100, 0)
	if _, ok := p.Allow("a", t0); !ok {
		t.Fatal("a's first line held")
	}
	if _, ok := p.Allow("b", t0); !ok {
		t.Fatal("b's first line held back by a's")
	}
	if _, ok := p.Allow("a", t0); ok {
		t.Fatal("a's second line within Every allowed")
	}
	if held, ok := p.Allow("a", t0.Add(Every)); !ok || held != 1 {
		t.Fatalf("a after Every = %d, %v; want 1, true", held, ok)
	}
	// A flood of sources: the table stays bounded, and the rest share one
	// limit.
	allowed := 0
	for i := range 10 * MaxSources {
		if _, ok := p.Allow("s"+strconv.Itoa(i), t0.Add(Every)); ok {
			allowed++
		}
	}
	if p.Len() > MaxSources {
		t.Fatalf("Len = %d; want at most %d", p.Len(), MaxSources)
	}
	if allowed > MaxSources+1 {
		t.Fatalf("%d lines allowed for a flood of new sources; want at most %d", allowed, MaxSources+1)
	}
	// Once their lines are old, the table makes room again.
	if _, ok := p.Allow("new", t0.Add(3*Every)); !ok {
		t.Fatal("a new source after the flood was held back")
	}
}
