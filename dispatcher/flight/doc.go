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
// which picks one (the shell's strategy) and says whether one in rotation
// is not skipped. The shell keeps one Worker per worker it knows, and
// tells the core when one comes up (EvWorkerUp) or goes down
// (EvWorkerDown); the core keeps on it what requests teach about it: the
// attempts open on it, when it was last heard, whether it is mute.
//
// The files: api.go the types of the way in and out; states.go the
// request's and the attempt's states and every transition between them;
// core.go the Core and the events' handlers; policy.go the small pure
// decisions (silence windows, hedging, the retry budget, hold lengths);
// timers.go the timer heap; orphans.go the replies handed over kept for
// their resends.
package flight
