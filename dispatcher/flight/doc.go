// Package flight is the pure core of a dispatcher: every decision about a
// request's life, from its arrival to its one answer, and about its
// attempts on workers.
//
// It does no I/O, reads no clock, draws no random number and starts no
// goroutine (purity_test.go checks): the shell (package dispatcher, or a
// simulator) turns what it hears into an Event, with the time on its own
// clock, calls Core.Step, and carries out the Actions it gets back in
// order. The same events in the same order give the same actions.
//
// The way in, Event: a request arrived, a worker's reply, a progress
// message, "no responders", a forward that could not be published, a
// worker up or down (and why), a reply handed over, time passing (EvTick,
// when an ActWake said so), the shutdown. The way out, Action: forward to
// a worker, relay a reply, answer with an error, a progress message to a
// client, a cancel to a worker, the acknowledgement of a long job's
// reply, wake me at T, and notes for membership and the log (a worker
// gone, a failure or success, a worker silent, a hold, a resume).
//
// Membership stays in the shell: the core sees workers through Pool,
// which picks one (the shell's strategy), says whether one in rotation is
// not skipped, and hears how many attempts are open on each. The shell
// keeps one Worker per worker it knows, and tells the core when one comes
// up (EvWorkerUp, also when an ejection or a drain ends) or goes down
// (EvWorkerDown, with why: silent heartbeats may start a hold, "no
// responders" a short one, a worker that left none). A worker draining,
// ejected or drained by an operator leaves rotation (the Pool no longer
// picks it) without an event: its attempts keep running. The core keeps
// on each Worker what requests teach about it: the attempts open on it,
// when it was last heard (any reply or progress message: "heard again"),
// whether it is mute (silent on everything past its silence, decided by
// the core, until heard again or MuteFor).
//
// Time: every event carries Now; the core arms its own timers and says
// when the next one is due with ActWake (emitted when the earliest timer
// moves sooner than last said, and after every EvTick); NextTimer says it
// too. Order: with one Pool and the same events, the same actions, in the
// same order: the core iterates no map.
//
// The files: api.go the types of the way in and out; states.go a
// request's states and every transition between them, attempts.go an
// attempt's (its watch among them); core.go the Core and Step; events.go
// what each event does, through those transitions; policy.go the small
// pure decisions (silence windows, hedging, the retry budget, hold
// lengths); timers.go the timer heap; orphans.go the replies handed over,
// kept for their resends; bugs.go past bugs the simulator puts back.
package flight
