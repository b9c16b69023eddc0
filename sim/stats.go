package sim

import (
	"fmt"
	"io"
)

// Stats counts what a run (or many) exercised: a simulator that never
// cuts a route or never hands over a reply is not testing them.
type Stats struct {
	faults [nFaultKinds]int

	msgs, lost, duped, reconnects    int
	requests, resends, resendsDenied int
	dispatched, forwards, reforwards int
	received, reruns                 int
	handOvers, orphansAnswered       int
	joined, holds, resumes, silent   int
	hedges, retries, drains, claims  int
	claimsRefused, lateReplies       int
	failedUnderFaults, lateInQueue   int
	steps                            int
}

// Add adds o to st.
func (st *Stats) Add(o *Stats) {
	for i := range st.faults {
		st.faults[i] += o.faults[i]
	}
	st.msgs += o.msgs
	st.lost += o.lost
	st.duped += o.duped
	st.reconnects += o.reconnects
	st.requests += o.requests
	st.resends += o.resends
	st.resendsDenied += o.resendsDenied
	st.dispatched += o.dispatched
	st.forwards += o.forwards
	st.reforwards += o.reforwards
	st.received += o.received
	st.reruns += o.reruns
	st.handOvers += o.handOvers
	st.orphansAnswered += o.orphansAnswered
	st.joined += o.joined
	st.holds += o.holds
	st.resumes += o.resumes
	st.silent += o.silent
	st.hedges += o.hedges
	st.retries += o.retries
	st.drains += o.drains
	st.claims += o.claims
	st.claimsRefused += o.claimsRefused
	st.lateReplies += o.lateReplies
	st.failedUnderFaults += o.failedUnderFaults
	st.lateInQueue += o.lateInQueue
	st.steps += o.steps
}

// Print writes the counters, a line for faults and one for requests.
func (st *Stats) Print(w io.Writer) {
	fmt.Fprint(w, "faults:")
	for k, n := range st.faults {
		fmt.Fprintf(w, " %s=%d", FaultKind(k), n)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "requests=%d resends=%d resends_denied=%d forwards=%d sent_on=%d reruns=%d hand_overs=%d orphans_answered=%d joined=%d holds=%d resumes=%d silent=%d hedges=%d retries=%d\n",
		st.requests, st.resends, st.resendsDenied, st.forwards, st.reforwards, st.reruns, st.handOvers,
		st.orphansAnswered, st.joined, st.holds, st.resumes, st.silent, st.hedges, st.retries)
	fmt.Fprintf(w, "failed_under_faults=%d late_in_queue=%d late_replies=%d drains=%d claims=%d claims_refused=%d reconnects=%d msgs=%d lost=%d duplicated=%d steps=%d\n",
		st.failedUnderFaults, st.lateInQueue, st.lateReplies, st.drains, st.claims, st.claimsRefused, st.reconnects,
		st.msgs, st.lost, st.duped, st.steps)
}
