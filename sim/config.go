package sim

import (
	"math/rand/v2"
	"time"
)

// Millisecond and Second, in simulated time.
const (
	Millisecond = time.Millisecond
	Second      = time.Second
)

// span is a range of durations, drawn from uniformly.
type span struct{ lo, hi Time }

func (s *Sim) pick(sp span) Time {
	if sp.hi <= sp.lo {
		return sp.lo
	}
	return sp.lo + Time(s.rng.Int64N(int64(sp.hi-sp.lo)))
}

// Config is one run's world, drawn from its seed: how many of each role,
// the network's delays, the load, and the lengths of its phases.
type Config struct {
	Brokers, Dispatchers, Workers, Clients int

	Hop            span // one hop's delay, jitter included
	RouteDetect    span // until brokers act on a route cut or healed
	StaleAfter     span // until a broker drops a connection that went silent
	ReconnectDelay span // from a lost connection to the first try
	ReconnectWait  span // between tries when no broker is reachable

	Heartbeat  Time // workers' heartbeat interval
	DeadAfter  Time // dispatchers' --dead-after
	Progress   Time // workers' progress_ms
	AckWait    Time // a long job's reply waits this long for its ack
	DrainGrace Time

	// Load: requests per client, the gap between them (set from Busy),
	// their work.
	Requests  int
	Gap       span
	ShortWork span
	LongWork  span
	LongShare float64 // of the requests that are long
	Busy      float64 // how busy the load keeps the workers, with every fault healed
	Timeout   Time    // the clients' deadline
	HedgeAsk  float64 // share of the requests that ask for a hedge

	// Phases: faults until FaultsEnd, then all healed; the run ends at End.
	FaultsEnd Time
	LoadEnd   Time
	End       Time
	// Recovery: after a heal, how long the system may take to be whole
	// again (heartbeats heard, connections moved) before liveness binds.
	Recovery Time
}

// drawConfig draws the world of a seed.
func drawConfig(rng *rand.Rand) Config {
	c := Config{
		Brokers:     1 + rng.IntN(3),
		Dispatchers: 1 + rng.IntN(3),
		Workers:     1 + rng.IntN(4),
		Clients:     1 + rng.IntN(3),

		RouteDetect:    span{100 * Millisecond, 2 * Second},
		StaleAfter:     span{500 * Millisecond, 3 * Second},
		ReconnectDelay: span{5 * Millisecond, 150 * Millisecond},
		ReconnectWait:  span{100 * Millisecond, 1 * Second},

		Heartbeat:  Second,
		DeadAfter:  3 * Second,
		Progress:   100 * Millisecond,
		AckWait:    200 * Millisecond,
		DrainGrace: 500 * Millisecond,

		Requests:  10 + rng.IntN(40),
		ShortWork: span{1 * Millisecond, 60 * Millisecond},
		LongWork:  span{200 * Millisecond, 2500 * Millisecond},
		LongShare: []float64{0, 0.1, 0.3, 0.6}[rng.IntN(4)],
		Busy:      []float64{0.1, 0.2, 0.3}[rng.IntN(3)],
		Timeout:   10 * Second,
		HedgeAsk:  []float64{0, 0, 0.2}[rng.IntN(3)],

		FaultsEnd: 8 * Second,
		LoadEnd:   12 * Second,
		Recovery:  5 * Second,
	}
	lo := Time(50+rng.IntN(500)) * time.Microsecond
	c.Hop = span{lo, lo + Time(rng.IntN(5000))*time.Microsecond}
	c.End = c.LoadEnd + c.Timeout + 2*Second
	return c
}

// hop draws one hop's delay.
func (s *Sim) hop() Time { return s.pick(s.cfg.Hop) }
