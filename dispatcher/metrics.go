package dispatcher

import (
	"cmp"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bilancia/bilancia/wire"
)

// Prometheus metrics. A collector reads the dispatcher's counters and its
// table of workers when scraped, so that they cost a request nothing
// more. The one thing counted on the hot path for them is each answer's
// status and latency, in latencies: two atomic adds, where a
// prometheus.Histogram beside a counter by status would take five.

// latencyBounds are the upper bounds of the latency histogram's buckets;
// a last bucket holds the rest.
var latencyBounds = [...]time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second,
	10 * time.Second, 30 * time.Second, 60 * time.Second,
}

// statuses are the answers' status codes counted apart; any other counts
// as "other".
var statuses = [...]int{200, wire.CodeBadRequest, wire.CodeTooLarge, wire.CodeInternal, wire.CodeUnavailable, wire.CodeDeadline}

const otherStatus = len(statuses)

// latencies counts the answered requests by status and latency.
type latencies struct {
	// buckets[s][b] counts the answers of status statuses[s] (otherStatus:
	// the rest) whose latency fell in bucket b, not cumulative: a count
	// by status and a histogram both follow from it.
	buckets [otherStatus + 1][len(latencyBounds) + 1]atomic.Uint64
	sum     atomic.Int64 // nanoseconds, all statuses
}

// observe counts an answer of status code, 0 for 200, after d.
func (l *latencies) observe(code int, d time.Duration) {
	s := otherStatus
	if code == 0 {
		s = 0
	} else {
		for i, c := range statuses {
			if c == code {
				s = i
				break
			}
		}
	}
	b := 0
	for b < len(latencyBounds) && d > latencyBounds[b] {
		b++
	}
	l.buckets[s][b].Add(1)
	l.sum.Add(int64(d))
}

// metrics are the dispatcher's Prometheus metrics: its registry, what the
// hot path counts, and the counters of rare events.
type metrics struct {
	reg       *prometheus.Registry
	latency   latencies
	silence   atomic.Uint64 // requests sent on from a worker fallen silent
	changes   *prometheus.CounterVec
	ejections prometheus.Counter
}

// The metrics' names, for the dashboard and the tests.
const (
	MetricRequests        = "bilancia_dispatcher_requests_total"
	MetricRequestDuration = "bilancia_dispatcher_request_duration_seconds"
)

func (m *metrics) init(d *Dispatcher) {
	m.reg = prometheus.NewRegistry()
	m.changes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bilancia_dispatcher_worker_transitions_total",
		Help: "Workers' changes of state, by the state left (none for a new worker) and the state entered.",
	}, []string{"from", "to"})
	m.ejections = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "bilancia_dispatcher_ejections_total",
		Help: "Workers ejected for repeated timeouts or 5xx replies.",
	})
	m.reg.MustRegister(m.changes, m.ejections, &collector{d: d})
}

// changed counts a worker's change of state.
func (m *metrics) changed(c change) {
	from := c.From
	if from == "" {
		from = "none"
	}
	m.changes.WithLabelValues(from, c.To).Inc()
	if c.To == wire.StateEjected {
		m.ejections.Inc()
	}
}

// Registry holds the dispatcher's metrics, whether or not anything serves
// them: MetricRequests by status, MetricRequestDuration, and the rest
// listed in README.md's "Metrics".
func (d *Dispatcher) Registry() *prometheus.Registry { return d.metrics.reg }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	descRequests = desc(MetricRequests, "Requests answered, by status (200, or the error code of the reply).", "status")
	descDuration = desc(MetricRequestDuration,
		"Time from a request's arrival to its answer, whatever its status.")
	descInflight       = desc("bilancia_dispatcher_requests_in_flight", "Requests admitted and not yet answered.")
	descInflightBytes  = desc("bilancia_dispatcher_requests_in_flight_bytes", "What the requests in flight cost in memory, as counted against --max-inflight-bytes.")
	descRetrying       = desc("bilancia_dispatcher_requests_retrying", "Requests in flight with a retry after a timeout outstanding.")
	descRetries        = desc("bilancia_dispatcher_retries_total", "Attempts sent after a worker's silence, a timeout or a hedge.")
	descSilence        = desc("bilancia_dispatcher_silence_retries_total", "Of the retries, those sent on because their worker fell silent on every request it held.")
	descDenied         = desc("bilancia_dispatcher_retries_denied_total", "Retries after a timeout refused by the retry budget.")
	descRedispatched   = desc("bilancia_dispatcher_redispatches_total", "Requests sent on because their worker went down.")
	descOrphans        = desc("bilancia_dispatcher_orphan_replies_total", "Replies workers handed over because their dispatcher was gone, by outcome: relayed to a request open here, kept for its resend, answered a resend from those kept, expired unclaimed, refused (no request id, client or payload, not from the worker it names, a 500 or 503), not taken by a resend from another client (mismatched).", "outcome")
	descRefused        = desc("bilancia_dispatcher_replies_refused_total", "Messages left unanswered because their reply subject is not an inbox, by responder.", "responder")
	descLogDropped     = desc("bilancia_dispatcher_log_lines_dropped_total", "Request log lines dropped because the log's queue was full.")
	descStart          = desc("bilancia_dispatcher_start_time_seconds", "When the dispatcher started, in seconds since the Unix epoch.")
	descWorkers        = desc("bilancia_dispatcher_workers", "Workers in the table, by state.", "state")
	descDrained        = desc("bilancia_dispatcher_workers_drained", "Workers an operator drained on this dispatcher, whatever their state.")
	descWorkerState    = desc("bilancia_dispatcher_worker_state", "1 for each worker, labelled with its current state.", "worker", "state")
	descWorkerForwards = desc("bilancia_dispatcher_worker_forwards_total", "Attempts sent to the worker.", "worker")
	descWorkerErrors   = desc("bilancia_dispatcher_worker_errors_total", "The worker's timeouts and 5xx replies.", "worker")
	descWorkerInflight = desc("bilancia_dispatcher_worker_requests_in_flight", "Attempts sent to the worker and not yet answered.", "worker")
	descWorkerEjected  = desc("bilancia_dispatcher_worker_ejections_total", "Times the worker was ejected.", "worker")
	descWorkerAge      = desc("bilancia_dispatcher_worker_heartbeat_age_seconds", "Time since the worker's last heartbeat.", "worker")
)

// maxWorkerSeries bounds the workers with series of their own: those in
// rotation first, then those down, in id order. The rest are summed under
// worker="*" (otherWorkers, which no worker id can be), where the state
// gauge counts them: ids made up by the thousand become no more series
// than that.
const maxWorkerSeries = 1000

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// otherWorkers is the worker label of the workers summed together.
const otherWorkers = "*"

// workerStates are the states of workers, each counted even when no worker is in it.
var workerStates = [...]string{wire.StateUp, wire.StateDraining, wire.StateEjected, wire.StateDown}

// collector reads a dispatcher's counters and table when scraped.
type collector struct{ d *Dispatcher }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descDuration, descInflight, descInflightBytes, descRetrying, descRetries,
		descSilence, descDenied, descRedispatched, descOrphans, descRefused, descLogDropped, descStart, descWorkers, descDrained, descWorkerState,
		descWorkerForwards, descWorkerErrors, descWorkerInflight, descWorkerEjected, descWorkerAge} {
		ch <- d
	}
	describePicker(ch)
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	d := c.d
	c.collectLatency(ch)
	st := d.Stats()
	counter := func(desc *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	gauge(descInflight, float64(st.Inflight))
	gauge(descInflightBytes, float64(d.inflight.bytes.Load()))
	core, retrying := d.coreStats()
	gauge(descRetrying, float64(retrying))
	counter(descRetries, st.Retries)
	counter(descSilence, d.metrics.silence.Load())
	counter(descDenied, st.RetriesDenied)
	counter(descRedispatched, st.Redispatched)
	for _, c := range []struct {
		outcome string
		n       int
	}{{"relayed", core.OrphansRelayed}, {"kept", core.OrphansKept}, {"answered", core.OrphansAnswered},
		{"expired", core.OrphansExpired}, {"refused", core.OrphansRefused}, {"mismatched", core.OrphansMismatched}} {
		counter(descOrphans, uint64(c.n), c.outcome)
	}
	for i := range d.guard.refused.n {
		counter(descRefused, d.guard.refused.n[i].Load(), responderNames[i])
	}
	counter(descLogDropped, st.LogDropped)
	if !d.start.IsZero() {
		gauge(descStart, float64(d.start.UnixNano())/1e9)
	}
	now := time.Now()
	counts := make(map[string]int, len(workerStates))
	drained, series := 0, 0
	var rest struct {
		states                       map[string]int
		forwarded, errors, ejections uint64
		inflight                     int64
	}
	ws := d.mem.Snapshot()
	// Workers in rotation first, then those down, each in id order.
	slices.SortStableFunc(ws, func(a, b wire.WorkerStatus) int {
		return cmp.Compare(b2i(a.State == wire.StateDown), b2i(b.State == wire.StateDown))
	})
	for _, w := range ws {
		counts[w.State]++
		if w.Drained {
			drained++
		}
		if series >= maxWorkerSeries {
			// Beyond the bound, or gone: one series for them all, so that
			// ids made up by the thousand do not become series.
			if rest.states == nil {
				rest.states = make(map[string]int, len(workerStates))
			}
			rest.states[w.State]++
			rest.forwarded += w.Forwarded
			rest.errors += w.Errors
			rest.ejections += uint64(w.Ejections)
			rest.inflight += w.Inflight
			continue
		}
		series++
		gauge(descWorkerState, 1, w.ID, w.State)
		counter(descWorkerForwards, w.Forwarded, w.ID)
		counter(descWorkerErrors, w.Errors, w.ID)
		gauge(descWorkerInflight, float64(w.Inflight), w.ID)
		counter(descWorkerEjected, uint64(w.Ejections), w.ID)
		gauge(descWorkerAge, now.Sub(w.LastHeartbeat).Seconds(), w.ID)
	}
	if rest.states != nil {
		for s, n := range rest.states {
			gauge(descWorkerState, float64(n), otherWorkers, s)
		}
		counter(descWorkerForwards, rest.forwarded, otherWorkers)
		counter(descWorkerErrors, rest.errors, otherWorkers)
		gauge(descWorkerInflight, float64(rest.inflight), otherWorkers)
		counter(descWorkerEjected, rest.ejections, otherWorkers)
	}
	for _, s := range workerStates {
		gauge(descWorkers, float64(counts[s]), s)
	}
	gauge(descDrained, float64(drained))
	d.collectPicker(ch)
}

// collectLatency sends the answers by status and the latency histogram,
// from one reading of the buckets, so that the histogram's count is the
// sum of the counts by status.
func (c *collector) collectLatency(ch chan<- prometheus.Metric) {
	l := &c.d.metrics.latency
	var all [len(latencyBounds) + 1]uint64
	for s := range l.buckets {
		var n uint64
		for b := range l.buckets[s] {
			v := l.buckets[s][b].Load()
			all[b] += v
			n += v
		}
		if n == 0 && s == otherStatus {
			continue
		}
		status := "other"
		if s < otherStatus {
			status = strconv.Itoa(statuses[s])
		}
		ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(n), status)
	}
	cum := make(map[float64]uint64, len(latencyBounds))
	var n uint64
	for b, bound := range latencyBounds {
		n += all[b]
		cum[bound.Seconds()] = n
	}
	n += all[len(latencyBounds)]
	ch <- prometheus.MustNewConstHistogram(descDuration, n, float64(l.sum.Load())/1e9, cum)
}
