package dispatcher

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bilancia/bilancia/dispatcher/pick"
	"github.com/bilancia/bilancia/wire"
)

// Strategy names (package pick chooses).
const (
	RoundRobin    = pick.RoundRobin
	PeakEWMA      = pick.PeakEWMA
	LeastInflight = pick.LeastInflight
)

// picker chooses a worker from a snapshot of members (pick.Picker).
type picker = pick.Picker[*member]

// Pending and Stats make a member a pick.Worker.
func (w *member) Pending() int64     { return w.inflight.Load() }
func (w *member) Stats() *pick.Stats { return &w.stats }

// replied records a reply from w at now to an attempt sent at sent (unix
// nanoseconds); failed: a 500 or 503. It is where the figures the picker
// reads are written, once per reply.
func (w *member) replied(now, sent int64, failed bool) {
	w.stats.Observe(now, time.Duration(now-sent), failed)
}

// newPicker returns the picker of strategy, its verdicts told to onVerdict.
func newPicker(strategy string, onVerdict func(w *member, from, to pick.Verdict, why string)) (picker, error) {
	p, err := pick.New(strategy, pick.Config[*member]{
		Rand:      rand.NewPCG(rand.Uint64(), rand.Uint64()),
		OnVerdict: onVerdict,
	})
	if err != nil {
		return nil, fmt.Errorf("dispatcher: %w", err)
	}
	return p, nil
}

// choose picks the worker for a request's next attempt: a live one, or
// when none is left a suspect. The in-flight table calls it with its lock
// held, which also serializes the picker.
func (d *Dispatcher) choose(skip func(*member) bool) *member {
	now := time.Now().UnixNano()
	live := d.mem.Live()
	d.pick.Refresh(live, now)
	if i := d.pick.Pick(live, skip, now); i >= 0 {
		return live[i]
	}
	sus := d.mem.Suspects()
	if i := d.pick.Pick(sus, skip, now); i >= 0 {
		return sus[i]
	}
	return nil
}

// verdict logs and publishes a worker's change of verdict: why the picker
// gives it less than its share, or that it takes all of it again. The
// picker tells each at most once a second per worker; the event queue
// never blocks, and the in-flight table's lock is held.
func (d *Dispatcher) verdict(w *member, from, to pick.Verdict, why string) {
	d.log.Info("worker "+to.String(), "worker", w.id, "from", from.String(), "reason", why)
	d.events.emit(d.subj.WorkerEvent(w.id, to.String()),
		wire.Event{Kind: to.String(), Time: time.Now(), Dispatcher: d.cfg.ID, Worker: w.id, From: from.String(), Reason: why})
}

// cameBackLocked starts the slow start of w, which entered rotation at
// now, unless the table is still filling: a fleet that starts together
// takes its shares at once. m.mu is held on entry and on exit.
func (m *membership) cameBackLocked(w *member, now time.Time) {
	if m.warmAt.IsZero() || now.Before(m.warmAt) {
		w.stats.Back(0)
		return
	}
	w.stats.Back(now.UnixNano())
}

// millis is d in milliseconds, to a microsecond.
func millis(d time.Duration) float64 { return round3(float64(d) / float64(time.Millisecond)) }

// round3 rounds x to three decimals, enough for a status line.
func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// The picker's figures per worker, for live workers only: a worker out of
// rotation is not chosen, and its series go with it, so that their number
// is bounded by the fleet in rotation.
var (
	descWorkerLatency = desc("bilancia_dispatcher_worker_latency_seconds", "EWMA of the latency of the worker's successful replies, as the choice of worker reads it.", "worker")
	descWorkerErrRate = desc("bilancia_dispatcher_worker_error_rate", "EWMA of the share of the worker's replies that were 500 or 503, 0..1.", "worker")
	descWorkerWeight  = desc("bilancia_dispatcher_worker_weight", "Share of its turns the worker takes, 0..1: less when slow, failing or ramping up after coming back.", "worker")
	descWorkerVerdict = desc("bilancia_dispatcher_worker_verdict", "1 for each live worker, labelled with why it takes less than its share (ok, warming, saturated, slow, failing).", "worker", "verdict")
)

func describePicker(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descWorkerLatency, descWorkerErrRate, descWorkerWeight, descWorkerVerdict} {
		ch <- d
	}
}

// collectPicker sends the picker's figures of each live worker.
func (d *Dispatcher) collectPicker(ch chan<- prometheus.Metric) {
	now := time.Now().UnixNano()
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	for _, w := range d.mem.Live() {
		f := w.stats.Figures(now)
		gauge(descWorkerLatency, f.Latency.Seconds(), w.id)
		gauge(descWorkerErrRate, f.ErrorRate, w.id)
		gauge(descWorkerWeight, f.Weight, w.id)
		gauge(descWorkerVerdict, 1, w.id, f.Verdict.String())
	}
}
