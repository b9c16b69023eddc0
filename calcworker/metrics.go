package calcworker

import (
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bilancia/bilancia/calcworker/calc"
	"github.com/bilancia/bilancia/wire"
)

// Metrics are the Prometheus metrics of the workers of a process, summed
// over them (a process may simulate thousands with worker --replicas; the
// dispatcher's metrics tell the workers apart). Create it with NewMetrics
// and give it to each worker (Config.Metrics). What a request counts is
// resolved in advance, by op and status: it costs a map lookup of the op,
// a histogram's observation and a counter's add, and no allocation.
type Metrics struct {
	reg        *prometheus.Registry
	ops        map[string]*opMetrics // calc's ops by name; read-only
	other      *opMetrics            // an op outside calc's list, or a request that did not parse
	heartbeats prometheus.Counter
	handed     prometheus.Counter // replies handed over (orphan.go)
	refused    prometheus.Counter // messages whose reply subject is not an inbox (replies.go)

	mu      sync.Mutex
	workers map[*Worker]struct{} // started and not yet stopped, for in flight
}

// opMetrics are one op's children of the vectors.
type opMetrics struct {
	duration  prometheus.Observer
	byStatus  [len(workerStatuses)]prometheus.Counter
	other     prometheus.Counter // a status not in workerStatuses
	cancelled prometheus.Counter
}

// workerStatuses are the reply codes counted apart, 0 for success.
var workerStatuses = [...]int{0, wire.CodeBadRequest, wire.CodeTooLarge, wire.CodeInternal, wire.CodeUnavailable, wire.CodeDeadline}

// durationBuckets, in seconds: from a fast op's tens of microseconds to
// the longest sleep and spin.
var durationBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// NewMetrics returns the metrics of a process's workers, registered in
// Registry.
func NewMetrics() *Metrics {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bilancia_worker_requests_total",
		Help: "Requests handled, by op (other: unknown or unparsed) and status (200, the error code, or cancelled: its answer came from elsewhere).",
	}, []string{"op", "status"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "bilancia_worker_request_duration_seconds",
		Help:    "Time from a request's arrival to its reply, waiting for a compute slot included, by op.",
		Buckets: durationBuckets,
	}, []string{"op"})
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		ops: make(map[string]*opMetrics),
		heartbeats: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bilancia_worker_heartbeats_total",
			Help: "Heartbeats sent.",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bilancia_worker_replies_refused_total",
			Help: "Messages left unanswered, and their work undone, because their reply subject is not an inbox.",
		}),
		handed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bilancia_worker_replies_handed_over_total",
			Help: "Replies to long jobs handed over to the dispatchers because the one that forwarded the job was gone.",
		}),
		workers: make(map[*Worker]struct{}),
	}
	resolve := func(op string) *opMetrics {
		o := &opMetrics{duration: duration.WithLabelValues(op)}
		for i, code := range workerStatuses {
			status := "200"
			if code != 0 {
				status = strconv.Itoa(code)
			}
			o.byStatus[i] = requests.WithLabelValues(op, status)
		}
		o.other = requests.WithLabelValues(op, "other")
		o.cancelled = requests.WithLabelValues(op, "cancelled")
		return o
	}
	for _, op := range calc.Ops() {
		m.ops[op.Name] = resolve(op.Name)
	}
	m.other = resolve("other")
	m.reg.MustRegister(requests, duration, m.heartbeats, m.handed, m.refused, workersCollector{m})
	return m
}

// Registry holds the metrics.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// refusedReply counts a message refused for its reply subject. A nil m
// counts nothing.
func (m *Metrics) refusedReply() {
	if m != nil {
		m.refused.Inc()
	}
}

// handedOver counts a reply handed over. A nil m counts nothing.
func (m *Metrics) handedOver() {
	if m != nil {
		m.handed.Inc()
	}
}

// done counts a request of op that arrived at since and ended with err,
// or was cancelled. A nil m counts nothing.
func (m *Metrics) done(op string, err error, cancelled bool, since time.Time) {
	if m == nil {
		return
	}
	o := m.ops[op]
	if o == nil {
		o = m.other
	}
	if cancelled {
		o.cancelled.Inc()
		return
	}
	o.duration.Observe(time.Since(since).Seconds())
	code := 0
	if err != nil {
		code = wire.CodeInternal
		var we *wire.Error
		if errors.As(err, &we) {
			code = we.Code
		}
	}
	for i, c := range workerStatuses {
		if c == code {
			o.byStatus[i].Inc()
			return
		}
	}
	o.other.Inc()
}

// heartbeat counts a heartbeat sent.
func (m *Metrics) heartbeat() {
	if m != nil {
		m.heartbeats.Inc()
	}
}

// add and remove keep the workers whose requests in flight are counted.
func (m *Metrics) add(w *Worker) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.workers[w] = struct{}{}
	m.mu.Unlock()
}

func (m *Metrics) remove(w *Worker) {
	if m == nil {
		return
	}
	m.mu.Lock()
	delete(m.workers, w)
	m.mu.Unlock()
}

var (
	descInflight = prometheus.NewDesc("bilancia_worker_requests_in_flight",
		"Requests accepted and not yet answered, computing or waiting for a compute slot.", nil, nil)
	descWorkers = prometheus.NewDesc("bilancia_worker_workers",
		"Workers running in this process.", nil, nil)
)

// workersCollector reads the workers' own counts when scraped.
type workersCollector struct{ m *Metrics }

func (c workersCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descInflight
	ch <- descWorkers
}

func (c workersCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	var inflight int64
	for w := range c.m.workers {
		inflight += w.inflight.Load()
	}
	n := len(c.m.workers)
	c.m.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descInflight, prometheus.GaugeValue, float64(inflight))
	ch <- prometheus.MustNewConstMetric(descWorkers, prometheus.GaugeValue, float64(n))
}
