package loadcheck

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/bilancia/bilancia/wire"
)

// The scorer: what the records of a checked load say about a fault, shared
// by Run and by the chaos matrix in e2e, each of which times detection in
// its own way.

// hurtBefore is how long before the injection a request may have been
// sent and still count as hurt by the fault: one in flight when it hit.
const hurtBefore = 3 * time.Second

// Score is what the records of a checked load say about a fault injected
// at Measure's inj.
type Score struct {
	// Sent requests; OK answered with the right result; Lost without a
	// successful reply (an error, or none in time), NoReply of them
	// without any reply and E503 with code 503 (no worker or no
	// dispatcher); Wrong answered with a wrong result or another
	// request's reply.
	Sent, OK, Lost, Wrong int
	NoReply, E503         int
	// Distinct request ids answered; DupIDs answers carrying an id an
	// earlier answer already carried: a request answered twice to its
	// caller.
	Distinct, DupIDs int
	// OverSends requests answered on the wire more often than they were
	// sent (a resent request may be answered once per send).
	OverSends int
	// Resent requests the client had to send more than once; WireDup
	// replies that reached the clients beyond the first of each request
	// (the answers to resends, dropped by the client).
	Resent, WireDup int
	// ResentExtra is the most a resent request waited beyond its own work
	// (its latency less Work): what losing the process that held it cost.
	ResentExtra time.Duration
	// Slowest are the resent requests that waited longest beyond their
	// work, at most 3, the longest first: what a fault cost, to look into.
	Slowest []*Record
	// HandedOver: resent requests answered with a reply their worker
	// handed over when the dispatcher that forwarded it was gone (a
	// result with Calc-Attempts 0): their job ran once.
	HandedOver int
	// P99 is the 99th percentile latency of the requests sent in the
	// fault's window, from inj on (of all requests when there is no
	// fault).
	P99 time.Duration
	// LastHurt is the end of the last request the fault hurt (failed,
	// resent, or retried on a second worker) among those sent from
	// hurtBefore before the injection to the end of the window; zero:
	// none, or no fault.
	LastHurt time.Time

	// Failures are examples, the first 10 failures in the order of the
	// records; Wrongs, Losts and OverSent the first 10 of each kind.
	Failures, Wrongs, Losts, OverSent []string
}

// Measure scores the records sent (those with a send time), given the
// replies counted per request id on the wire (Wire.Counts), a fault
// injected at inj (zero: none) and the window after it in which requests
// count as sent during the fault.
func Measure(recs []*Record, wireN map[string]int, inj time.Time, window time.Duration) *Score {
	s := &Score{}
	ids := map[string]bool{}
	from, to := inj.Add(-hurtBefore), inj.Add(window)
	var during []time.Duration
	for _, rc := range recs {
		if rc.Sent.IsZero() {
			continue
		}
		s.Sent++
		switch {
		case rc.OK():
			s.OK++
		case rc.Wrong != "":
			s.Wrong++
			s.example(&s.Wrongs, rc.Wrong)
		default:
			s.Lost++
			if rc.Res == nil {
				s.NoReply++
			}
			if rc.Code() == wire.CodeUnavailable {
				s.E503++
			}
			s.example(&s.Losts, fmt.Sprintf("%s: %v (after %v)", rc.Cmd, rc.Err, rc.Done.Sub(rc.Sent).Round(time.Millisecond)))
		}
		if rc.Res != nil {
			if ids[rc.Res.ID] {
				s.DupIDs++
			}
			ids[rc.Res.ID] = true
			if n := wireN[rc.Res.ID]; n > rc.Res.Sends {
				s.OverSends++
				s.example(&s.OverSent, fmt.Sprintf("%s: %d replies to %d sends", rc.Res.ID, n, rc.Res.Sends))
			}
			if rc.Resent() {
				s.Resent++
				s.ResentExtra = max(s.ResentExtra, rc.Extra())
				s.Slowest = append(s.Slowest, rc)
				if rc.OK() && rc.Res.Attempts == 0 && rc.Res.Dispatcher != "" {
					s.HandedOver++
				}
			}
		}
		if inj.IsZero() || !rc.Sent.Before(inj) && rc.Sent.Before(to) {
			during = append(during, rc.Done.Sub(rc.Sent))
		}
		if !inj.IsZero() && rc.Hurt() && !rc.Sent.Before(from) && rc.Sent.Before(to) && rc.Done.After(s.LastHurt) {
			s.LastHurt = rc.Done
		}
	}
	s.Distinct = len(ids)
	slices.SortStableFunc(s.Slowest, func(a, b *Record) int { return cmp.Compare(b.Extra(), a.Extra()) })
	s.Slowest = s.Slowest[:min(len(s.Slowest), 3)]
	for _, n := range wireN {
		s.WireDup += max(0, n-1)
	}
	s.P99 = Percentile(during, 99)
	return s
}

// example keeps msg among the first 10 of its kind and of all failures.
func (s *Score) example(kind *[]string, msg string) {
	if len(*kind) < 10 {
		*kind = append(*kind, msg)
	}
	if len(s.Failures) < 10 {
		s.Failures = append(s.Failures, msg)
	}
}

// Recovery is when the system was over the fault: the later of LastHurt
// and, if rejoin is not nil, the time it returns for the deployment whole
// again. It says false when rejoin does; a zero time with true means that
// nothing was hurt and no rejoin asked.
func (s *Score) Recovery(rejoin func() (time.Time, bool)) (time.Time, bool) {
	end := s.LastHurt
	if rejoin != nil {
		at, ok := rejoin()
		if !ok {
			return time.Time{}, false
		}
		if at.After(end) {
			end = at
		}
	}
	return end, true
}

// Columns returns the fault matrix's columns for fault that the records
// fill, with dup as the duplicates column (which its users count
// differently: see Columns.Dup); detect and recover are left to the caller.
func (s *Score) Columns(fault string, dup int) Columns {
	return Columns{Fault: fault, Sent: s.Sent, OK: s.OK, Lost: s.Lost, Wrong: s.Wrong, Dup: dup, P99: s.P99}
}

// FirstDone is the earliest end, at or after since, of a request that ok
// accepts.
func FirstDone(recs []*Record, since time.Time, ok func(*Record) bool) (time.Time, bool) {
	var first time.Time
	for _, rc := range recs {
		if ok(rc) && !rc.Done.Before(since) && (first.IsZero() || rc.Done.Before(first)) {
			first = rc.Done
		}
	}
	return first, !first.IsZero()
}

// Percentile returns the p-th percentile of ds (nearest rank), sorting ds.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(float64(len(ds))*p/100+0.5) - 1
	return ds[max(0, min(i, len(ds)-1))]
}

// measure fills the report from the records, the wire counters and the
// polls.
func (r *run) measure(rep *Report, recs []*Record, f *faultRun, rejoinAt time.Time, rejoined bool) {
	cfg := &r.cfg
	inj := f.injected
	s := Measure(recs, r.load.Wire.Counts(), inj, cfg.Window)
	rep.Columns = s.Columns(cfg.Fault, s.OverSends)
	rep.Resent, rep.WireDup, rep.E503, rep.Failures = s.Resent, s.WireDup, s.E503, s.Failures
	rep.ResentExtra, rep.HandedOver = s.ResentExtra, s.HandedOver
	for _, rc := range s.Slowest {
		cfg.Logf("resent: %s", rc.Describe(f.injected))
	}
	rep.Reconnects = int(r.reconnects.Load())
	for _, c := range r.load.List {
		rep.Denied += int(c.Stats().RetriesDenied)
	}
	if inj.IsZero() {
		return
	}

	if at, ok := r.firstDisconnect(inj); ok {
		rep.ClientDetect, rep.ClientDetected = at.Sub(inj), true
	}
	polls := r.poller.snapshot(true)
	var det time.Time
	for _, d := range detectors(cfg.Detect) {
		var at time.Time
		var ok bool
		switch {
		case d == DetectResend:
			at, ok = FirstDone(recs, inj, (*Record).Resent)
		case d == DetectDisconnect:
			at, ok = r.firstDisconnect(inj)
		case d == DetectView && !cfg.Expect.empty():
			at, ok = firstNotWhole(polls, cfg.Expect, inj)
		case strings.HasPrefix(d, DetectWorkerPrefix):
			at, ok = firstWorkerLeft(polls, strings.TrimPrefix(d, DetectWorkerPrefix), inj)
		}
		if ok && (det.IsZero() || at.Before(det)) {
			det = at
		}
	}
	if !det.IsZero() {
		rep.Detect, rep.Detected = max(0, det.Sub(inj)), true
	}

	var rejoin func() (time.Time, bool)
	if rep.RejoinAsked {
		rejoin = func() (time.Time, bool) { return rejoinAt, rejoined }
	}
	end, ok := s.Recovery(rejoin)
	rep.Recovered = ok
	if ok && !end.IsZero() {
		rep.Recover = max(0, end.Sub(inj))
	}
}

// firstDisconnect is the first loss of a broker by a load connection at
// or after since.
func (r *run) firstDisconnect(since time.Time) (time.Time, bool) {
	r.discMu.Lock()
	defer r.discMu.Unlock()
	var first time.Time
	for _, t := range r.disconnects {
		if !t.Before(since) && (first.IsZero() || t.Before(first)) {
			first = t
		}
	}
	return first, !first.IsZero()
}
