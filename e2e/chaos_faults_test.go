//go:build chaos

package e2e

// The rows of the fault matrix: how each fault is injected, detected and
// recovered from, and what must hold (RELIABILITY.md).

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/bilancia/bilancia/loadcheck"
	"github.com/bilancia/bilancia/wire"
)

var faults = []fault{
	{
		name:   "worker-kill",
		window: 3 * time.Second,
		inject: func(r *rig) { r.ws["w2"].kill(r.t) },
		detect: func(r *rig) (time.Time, bool) { return r.firstEvent("worker down", "w2", r.injected) },
		check: func(r *rig, s *loadcheck.Score) {
			mustNoLoss(r, s)
			// Each dispatcher notices at its first forward to the dead
			// worker, not after the heartbeat timeout.
			r.eachEvent("worker down", "w2", "marked w2 down", func(id string, _ []logLine, l logLine) {
				r.note("%s_down=%dms(%s)", id, l.Time.Sub(r.injected).Milliseconds(), strings.ReplaceAll(l.Reason, " ", "_"))
				if l.Reason != "no responders" {
					r.t.Errorf("%s marked w2 down for %q, want \"no responders\"", id, l.Reason)
				}
			})
		},
	},
	{
		name:     "worker-hang",
		window:   6 * time.Second,
		inject:   func(r *rig) { r.ws["w2"].signal(r.t, syscall.SIGSTOP) },
		healWait: 5 * time.Second,
		heal:     func(r *rig) { r.ws["w2"].signal(r.t, syscall.SIGCONT) },
		detect:   func(r *rig) (time.Time, bool) { return r.firstEvent("worker down", "w2", r.injected) },
		rejoin:   func(r *rig) (time.Time, bool) { return r.lastRejoin("w2") },
		check: func(r *rig, s *loadcheck.Score) {
			mustNoLoss(r, s)
			if _, ok := r.lastRejoin("w2"); !ok {
				r.t.Errorf("w2 did not rejoin in every dispatcher after SIGCONT")
			}
			hedged := 0
			for _, rc := range r.load.records() {
				if rc.Res != nil && rc.Res.Attempts > 1 && !rc.Sent.Before(r.injected.Add(-time.Second)) && rc.Sent.Before(r.healed) {
					hedged++
				}
			}
			r.note("retried_elsewhere=%d", hedged)
			served := r.served("w2", r.healed)
			r.note("w2_served_after_rejoin=%d", served)
			if served == 0 {
				r.t.Errorf("w2 got no traffic after it rejoined")
			}
		},
	},
	{
		name: "worker-drain",
		// Longer sleeps, and the SIGTERM once w2 has work in hand, so that
		// there is something in flight to finish.
		sleepMS: 300,
		ready: holding("w2 has nothing in flight", func(s wire.Status) bool {
			return slices.ContainsFunc(s.Workers, func(w wire.WorkerStatus) bool { return w.ID == "w2" && w.Inflight > 0 })
		}),
		window: 3 * time.Second,
		inject: func(r *rig) { r.ws["w2"].signal(r.t, syscall.SIGTERM) },
		detect: func(r *rig) (time.Time, bool) { return r.firstEvent("worker draining", "w2", r.injected) },
		rejoin: func(r *rig) (time.Time, bool) {
			if _, err := r.ws["w2"].wait(40 * time.Second); err != nil {
				return time.Time{}, false
			}
			return textEvent(r.ws["w2"].output(), `msg="worker stopped"`, r.injected)
		},
		check: func(r *rig, s *loadcheck.Score) {
			mustNoLoss(r, s)
			w := r.ws["w2"]
			code, err := w.wait(40 * time.Second)
			if err != nil || code != 0 {
				r.t.Errorf("w2 after SIGTERM: exit %d, %v", code, err)
			}
			if !strings.Contains(w.output(), "errors=0") {
				r.t.Errorf("w2 did not stop cleanly:\n%s", w.output())
			}
			finished := 0
			r.eachEvent("worker draining", "w2", "saw w2 draining", func(id string, lines []logLine, dr logLine) {
				for _, l := range requests(lines) {
					if l.Worker != "w2" {
						continue
					}
					if l.start().After(dr.Time) {
						r.t.Errorf("%s forwarded a request to w2 after it said it drains: %s", id, l.raw)
					}
					if l.Time.After(dr.Time) {
						finished++
					}
				}
				if l, ok := event(lines, "worker down", "w2", r.injected); ok && l.Reason == "no responders" {
					r.t.Errorf("%s: a request reached w2 after it unsubscribed: %s", id, l.raw)
				}
			})
			r.note("inflight_finished_on_w2=%d", finished)
			if m := drainingInflight.FindStringSubmatch(w.output()); m != nil {
				r.note("w2_inflight_at_sigterm=%s", m[1])
			}
		},
	},
	{
		name:   "worker-join",
		window: 3 * time.Second,
		inject: func(r *rig) { r.ws["w4"] = r.e.worker(r.url, "w4") },
		detect: func(r *rig) (time.Time, bool) { return r.firstEvent("worker up", "w4", r.injected) },
		rejoin: func(r *rig) (time.Time, bool) {
			// Recovered = the new capacity is used by every dispatcher.
			return r.latest(func(lines []logLine) (time.Time, bool) {
				f, ok := firstRequestTo(lines, "w4")
				return f.start(), ok
			})
		},
		check: func(r *rig, s *loadcheck.Score) {
			mustNoLoss(r, s)
			r.eachEvent("worker up", "w4", "saw w4 up", func(id string, lines []logLine, up logLine) {
				f, ok := firstRequestTo(lines, "w4")
				if !ok {
					r.t.Errorf("%s never forwarded to w4", id)
					return
				}
				// How soon is a figure (the matrix's line), not an
				// assertion: a loaded machine stretches it.
				gap := f.start().Sub(up.Time)
				r.note("%s_up_to_traffic=%dms", id, gap.Milliseconds())
			})
		},
	},
	{
		name: "slow-worker",
		// A worker slower than the attempt timeout and sending no progress
		// messages (a worker of another kind): its requests are retried on
		// the others, and it is ejected after 5 in a row. A worker that
		// sends them is never blamed for being slow (TestLongJobsRunOnce).
		dflags: []string{"--attempt-timeout", "200ms"},
		window: 3 * time.Second,
		inject: func(r *rig) { r.ws["w4"] = r.e.worker(r.url, "w4", "--delay", "300ms", "--progress=-1ms") },
		detect: func(r *rig) (time.Time, bool) { return r.firstEvent("worker ejected", "w4", r.injected) },
		rejoin: func(r *rig) (time.Time, bool) { return r.firstEvent("worker ejected", "w4", r.injected) },
		check: func(r *rig, s *loadcheck.Score) {
			mustNoLoss(r, s)
			r.eachEvent("worker ejected", "w4", "ejected the slow worker", func(id string, _ []logLine, l logLine) {
				r.note("%s_ejected=%dms", id, l.Time.Sub(r.injected).Milliseconds())
			})
			// The rest: requests that never touched w4 (first attempt on a
			// healthy worker), before and during the fault.
			var before, during []time.Duration
			for _, rc := range r.load.records() {
				if rc.Res == nil || rc.Res.Attempts != 1 || rc.Res.Worker == "w4" || rc.Want == nil {
					continue
				}
				d := rc.Done.Sub(rc.Sent)
				if rc.Sent.Before(r.injected) {
					before = append(before, d)
				} else if rc.Sent.Before(r.injected.Add(3 * time.Second)) {
					during = append(during, d)
				}
			}
			r.note("others_p99_before=%dms others_p99_during=%dms", loadcheck.Percentile(before, 99).Milliseconds(), loadcheck.Percentile(during, 99).Milliseconds())
		},
	},
	{
		name: "dispatcher-kill",
		// Longer sleeps, and the kill once d1 holds requests, so that some
		// die with it and must be sent again by their clients.
		sleepMS: 300,
		ready:   holding("d1 has nothing in flight", func(s wire.Status) bool { return s.Dispatcher == "d1" && s.Inflight > 0 }),
		window:  3 * time.Second,
		inject:  func(r *rig) { r.ds["d1"].kill(r.t) },
		detect: func(r *rig) (time.Time, bool) {
			// The first failover: the first request answered after the
			// client sent it again.
			return loadcheck.FirstDone(r.load.records(), r.injected, (*loadcheck.Record).Resent)
		},
		check: func(r *rig, s *loadcheck.Score) {
			mustNoLoss(r, s)
			r.note("client_retried=%d resent_extra_max=%dms handed_over=%d", s.Resent, s.ResentExtra.Milliseconds(), s.HandedOver)
			for _, rc := range s.Slowest {
				r.t.Logf("resent: %s", rc.Describe(r.injected))
			}
			if s.Resent == 0 {
				r.t.Errorf("no request was sent again: the kill caught nothing in flight")
			}
		},
	},
	{
		name: "long-job",
		// Nine sleep 2000 through a client of their own, three on each
		// worker; 500ms in, w1 is SIGKILLed and w2 SIGSTOPped (SIGCONT
		// 3 s later). The jobs on them must start again elsewhere, once.
		window: 4 * time.Second,
		inject: func(r *rig) {
			r.startLong(9, 2000)
			time.Sleep(500 * time.Millisecond) // the jobs are under way: the fault's point
			r.ws["w1"].kill(r.t)
			r.ws["w2"].signal(r.t, syscall.SIGSTOP)
		},
		healWait: 3 * time.Second,
		heal:     func(r *rig) { r.ws["w2"].signal(r.t, syscall.SIGCONT) },
		detect: func(r *rig) (time.Time, bool) {
			t1, ok1 := r.firstEvent("worker silent", "w1", r.injected)
			t2, ok2 := r.firstEvent("worker silent", "w2", r.injected)
			if !ok1 || (ok2 && t2.Before(t1)) {
				return t2, ok2
			}
			return t1, ok1
		},
		check: func(r *rig, s *loadcheck.Score) {
			mustNoLoss(r, s)
			execs, failed := r.waitLong()
			r.note("long_failed=%d executions=%s", failed, strings.Join(execs, ","))
			if failed != 0 {
				r.t.Errorf("%d long jobs failed", failed)
			}
		},
	},
	{
		name:    "broker-node-loss",
		brokers: 3,
		window:  3 * time.Second,
		inject: func(r *rig) {
			b := r.brokerOf("bilancia-worker w1")
			r.note("killed=%s", b.name)
			b.kill(r.t)
		},
		detect: func(r *rig) (time.Time, bool) {
			return textEvent(r.ws["w1"].output(), `msg="nats disconnected"`, r.injected)
		},
		rejoin: func(r *rig) (time.Time, bool) {
			return textEvent(r.ws["w1"].output(), `msg="nats reconnected"`, r.injected)
		},
		check: func(r *rig, s *loadcheck.Score) {
			mustNoLoss(r, s)
			if _, ok := textEvent(r.ws["w1"].output(), `msg="nats reconnected"`, r.injected); !ok {
				r.t.Errorf("w1 did not reconnect:\n%s", r.ws["w1"].output())
			}
			served := r.served("w1", r.injected.Add(2*time.Second))
			r.note("w1_served_after=%d", served)
			if served == 0 {
				r.t.Errorf("w1 served nothing after it reconnected")
			}
		},
	},
	{
		name:     "cpu-saturation",
		window:   5 * time.Second,
		inject:   func(r *rig) { r.startSpin(32, 300, 5*time.Second) },
		healWait: 5 * time.Second,
		heal:     func(r *rig) {},
		detect:   func(r *rig) (time.Time, bool) { return time.Time{}, false },
		check: func(r *rig, s *loadcheck.Score) {
			mustNoLoss(r, s)
			r.mu.Lock()
			r.note("spin_ok=%d spin_failed=%d", r.spin.ok, r.spin.failed)
			r.mu.Unlock()
			ejected := 0
			for id, lines := range r.logs() {
				for _, l := range lines {
					if l.Time.Before(r.injected) {
						continue
					}
					switch l.Msg {
					case "worker down":
						r.t.Errorf("%s declared %s down during CPU saturation: %s", id, l.Worker, l.raw)
					case "worker ejected":
						ejected++
					}
				}
			}
			r.note("ejections=%d", ejected)
		},
	},
	{
		name:   "all-workers-down",
		window: 4 * time.Second,
		inject: func(r *rig) {
			for _, id := range []string{"w1", "w2", "w3"} {
				r.ws[id].signal(r.t, syscall.SIGKILL)
			}
			for _, id := range []string{"w1", "w2", "w3"} {
				if _, err := r.ws[id].wait(10 * time.Second); err != nil {
					r.t.Fatal(err)
				}
			}
		},
		healWait: 3 * time.Second,
		heal: func(r *rig) {
			for _, id := range []string{"w1", "w2", "w3"} {
				r.ws[id] = r.e.worker(r.url, id)
			}
		},
		detect: func(r *rig) (time.Time, bool) {
			return loadcheck.FirstDone(r.load.records(), r.injected, func(rc *loadcheck.Record) bool { return rc.Code() == wire.CodeUnavailable })
		},
		rejoin: func(r *rig) (time.Time, bool) {
			// Service is back at the first success after the restart.
			return loadcheck.FirstDone(r.load.records(), r.healed, func(rc *loadcheck.Record) bool { return rc.OK() && rc.Sent.After(r.healed) })
		},
		check: func(r *rig, s *loadcheck.Score) {
			mustCorrect(r, s)
			var fast []time.Duration
			others := 0
			var otherEx []string
			resumedFail := 0
			for _, rc := range r.load.records() {
				if rc.OK() {
					continue
				}
				if rc.Res != nil && rc.Code() == wire.CodeUnavailable {
					fast = append(fast, rc.Done.Sub(rc.Sent))
				} else {
					others++
					if len(otherEx) < 5 {
						otherEx = append(otherEx, fmt.Sprintf("%s: %v after %v", rc.Cmd, rc.Err, rc.Done.Sub(rc.Sent).Round(time.Millisecond)))
					}
				}
				if rc.Sent.After(r.healed.Add(2 * time.Second)) {
					resumedFail++
				}
			}
			p99, worst := loadcheck.Percentile(fast, 99), loadcheck.Percentile(fast, 100)
			r.note("e503=%d p99_503=%dms max_503=%dms other_failures=%d", len(fast), p99.Milliseconds(), worst.Milliseconds(), others)
			if s.NoReply != 0 || others != 0 {
				r.t.Errorf("%d requests without a reply and %d other failures; want every request answered ok or 503: %v", s.NoReply, others, otherEx)
			}
			if len(fast) == 0 {
				r.t.Errorf("no 503 during the outage")
			}
			// A hang detector, not a speed test (p99_503 above is the
			// figure): a 503 comes from the dispatcher's hold, long
			// before any deadline would answer 504.
			if worst >= 5*time.Second {
				r.t.Errorf("503s are slow: p99 %v, max %v; want them from the hold, not a deadline", p99, worst)
			}
			if resumedFail != 0 {
				r.t.Errorf("%d requests sent 2s after the restart failed: service did not resume", resumedFail)
			}
		},
	},
}

var drainingInflight = regexp.MustCompile(`msg="worker draining" id=w2 inflight=(\d+)`)

// inBrokerFaults are run a second time with each dispatcher inside a
// broker of its own (broker --dispatcher, two brokers clustered): the
// deployment with the lowest latency keeps the same promises. There,
// dispatcher-kill SIGKILLs the broker with d1 inside, and the clients on
// it move to the other broker and send again.
var inBrokerFaults = []string{"worker-kill", "worker-hang", "worker-drain", "slow-worker", "dispatcher-kill", "all-workers-down", "long-job"}

func init() {
	for _, f := range faults[:len(faults):len(faults)] {
		if slices.Contains(inBrokerFaults, f.name) {
			f.name += "-in-broker"
			f.inBroker = true
			faults = append(faults, f)
		}
	}
}
