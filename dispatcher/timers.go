package dispatcher

import "time"

// The sweep's timer maths; the requests' own (silences, hedges, the retry
// budget, holds) are in the core (flight/policy.go).

// sleepUntil is how long the sweep sleeps, at now, to wake at next: never
// less than tick, so that a burst of timers is handled in rounds.
func sleepUntil(next, now int64, tick time.Duration) time.Duration {
	return max(time.Duration(next-now), tick)
}

// silenceIsNews tells whether the sweep may expire silent workers, gap
// after it last did so, with backlog heartbeats received and not yet
// handled. Heartbeats waiting to be handled, or a sweep that ran late
// (this process starved or paused), say nothing about the workers: expire
// only when sure to have heard what they said.
func silenceIsNews(backlog int, gap, deadAfter time.Duration) bool {
	return backlog == 0 && gap < deadAfter/2
}
