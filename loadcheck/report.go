package loadcheck

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Columns are the fault matrix's first columns, printed by the chaos
// matrix (e2e) and by Run (scripts/compose-test) in this order and format,
// which RELIABILITY.md and the scripts read:
//
//	fault=... sent=... ok=... lost=... wrong=... dup=... p99=...ms detect=...ms recover=...ms
type Columns struct {
	Fault string
	// Sent requests; OK answered with the right result; Lost without a
	// successful reply (an error or none in time); Wrong answered with a
	// wrong result. Dup is what the printer counts as answered twice:
	// for Run, sends answered more than once on the wire (a resent
	// request may be answered once per send: that is not a dup),
	// Score.OverSends; for the chaos matrix, request ids returned to the
	// caller twice, Score.DupIDs.
	Sent, OK, Lost, Wrong, Dup int
	// P99 is the 99th percentile latency of the requests sent during the
	// fault window (of all requests when there is no fault).
	P99 time.Duration
	// Detect is from the injection to the detection; Recover from the
	// injection to the recovery (see Score.Recovery). Printed as "none"
	// unless Detected, Recovered.
	Detect, Recover     time.Duration
	Detected, Recovered bool
}

// Line is the columns as the fault matrix prints them: the start of a
// fault line. (Report.Line goes on with the run's own fields.)
func (c *Columns) Line() string {
	return fmt.Sprintf("fault=%s sent=%d ok=%d lost=%d wrong=%d dup=%d p99=%dms detect=%s recover=%s",
		c.Fault, c.Sent, c.OK, c.Lost, c.Wrong, c.Dup, c.P99.Milliseconds(),
		ms(c.Detect, c.Detected), ms(c.Recover, c.Recovered))
}

func ms(d time.Duration, ok bool) string {
	if !ok {
		return "none"
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

// Report is what a run measured. In its Columns, Dup counts sends
// answered more than once on the wire; Detect is measured as Config.Detect
// says, and Recover is from the injection to the later of the last request
// hurt by the fault (failed, resent, or retried on a second worker) and,
// with Config.Rejoin, the deployment whole again: 0 when nothing was hurt
// and no rejoin was asked.
type Report struct {
	Columns
	// Resent requests the client had to send more than once; WireDup
	// replies that reached the client beyond the first of each request
	// (the answers to resends, dropped by the client).
	Resent, WireDup int
	// ResentExtra is the most a resent request waited beyond its own work.
	ResentExtra time.Duration
	// HandedOver: resent requests answered with a reply handed over.
	HandedOver int
	// Denied counts the resends the clients' retry budget put off.
	Denied int
	// E503 failed requests answered 503 (no worker or no dispatcher).
	E503        int
	RejoinAsked bool
	// Reconnects counts the load connections' reconnections;
	// ClientDetect is from the injection to the first of them losing its
	// broker, if one did.
	Reconnects     int
	ClientDetect   time.Duration
	ClientDetected bool
	// ReadyAfter is how long the deployment took to be whole before the
	// load; InjectTook and HealTook how long the fault functions ran.
	ReadyAfter, InjectTook, HealTook time.Duration
	// Requests is how many requests were meant to be sent.
	Requests int
	// Examples of failures, for the log.
	Failures []string
	// FaultErr is an error of Inject or Heal.
	FaultErr error
}

// Line is the report in the fault matrix's format, with extra fields after.
func (r *Report) Line() string {
	s := r.Columns.Line()
	s += fmt.Sprintf(" resent=%d resent_extra_max=%dms handed_over=%d retries_denied=%d wire_dup=%d e503=%d reconnects=%d ready_after=%dms",
		r.Resent, r.ResentExtra.Milliseconds(), r.HandedOver, r.Denied, r.WireDup, r.E503, r.Reconnects, r.ReadyAfter.Milliseconds())
	if r.Fault != "none" {
		s += fmt.Sprintf(" inject_took=%dms", r.InjectTook.Milliseconds())
	}
	if r.ClientDetected {
		s += fmt.Sprintf(" client_detect=%dms", r.ClientDetect.Milliseconds())
	}
	if r.HealTook > 0 {
		s += fmt.Sprintf(" heal_took=%dms", r.HealTook.Milliseconds())
	}
	return s
}

// Err says what the run found wrong: a request without one correct reply,
// a send answered twice, a load cut short, no rejoin when one was asked,
// or a fault that could not be injected. nil means the run passed.
func (r *Report) Err() error {
	var errs []string
	if r.FaultErr != nil {
		errs = append(errs, r.FaultErr.Error())
	}
	if r.Sent < r.Requests {
		errs = append(errs, fmt.Sprintf("sent %d of %d requests", r.Sent, r.Requests))
	}
	if r.Lost > 0 {
		errs = append(errs, fmt.Sprintf("%d requests lost", r.Lost))
	}
	if r.Wrong > 0 {
		errs = append(errs, fmt.Sprintf("%d wrong results", r.Wrong))
	}
	if r.Dup > 0 {
		errs = append(errs, fmt.Sprintf("%d sends answered more than once", r.Dup))
	}
	if r.RejoinAsked && !r.Recovered {
		errs = append(errs, "the deployment was not whole again after the fault")
	}
	if len(errs) == 0 {
		return nil
	}
	return errors.New(strings.Join(errs, "; "))
}
