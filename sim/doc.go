// Package sim is Bilancia's deterministic simulator: one goroutine, one
// seed (math/rand/v2's PCG, never the global source), a simulated clock
// whose tasks due at one time run in the order they were scheduled, and
// the real decision cores inside it: dispatcher/flight for each
// dispatcher, client/resend for each client. A seed replays byte for
// byte; its trace's hash tells two runs apart.
//
// What it models (one file each): the clock (clock.go); a cluster of
// brokers joined by routes, each node connected to one broker, hops with
// delay and jitter, loss, duplication and reordering, partitions of any
// set of brokers and nodes, a cut hop holding what crosses it until it
// heals or its connection closes, brokers learning of a cut only after a
// detection delay, a broker's death moving its connections to another
// after nats.go's reconnect delay with its reconnect buffer flushed, and
// subjects and queue groups as NATS delivers them, "no responders"
// included (net.go, node.go); workers as docs/protocol.md has them, with
// their claim, heartbeats, progress messages, cancel, the hand-over of a
// long job's reply on calc.orphan.<id>, and the drain (worker.go); the
// dispatcher shell's membership from heartbeats and its start
// (members.go, dispatcher.go); clients and their load (client.go,
// clientcore.go); a fault schedule drawn per seed, with its own mix of
// fault kinds (swarm testing), then a quiet phase with every fault healed
// (faults.go); the invariants, checked as the run goes (check.go,
// trail.go); the trace (trace.go) and the counters (stats.go).
//
// What it does not model: the real nats-server's internals (its buffers,
// slow-consumer cuts, interest propagation beyond "a route up or down"),
// TCP beyond "held while cut, lost with its connection", the kernel's
// scheduling and a loaded machine's pauses beyond a process stopped or
// slowed, clocks that disagree, payload sizes and the broker's max
// payload, authentication, the dispatcher's ejection of failing workers,
// its metrics, status, control and events, and the compute itself (a job
// is a duration and a checked result).
package sim
