package dashboard

import (
	"encoding/json"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/bilancia/bilancia/wire"
)

// summary is the dispatcher's own line on the page.
type summary struct {
	ID        string         `json:"id"`
	Version   string         `json:"version"`
	Strategy  string         `json:"strategy"`
	StartedAt int64          `json:"started_at"` // Unix milliseconds
	Inflight  int64          `json:"inflight"`
	Served    uint64         `json:"served"`
	Failed    uint64         `json:"failed"`
	Total     int            `json:"total"`
	Counts    map[string]int `json:"counts"`
	Drained   int            `json:"drained"`
	Interval  int64          `json:"interval_ms"` // of the updates
	Control   bool           `json:"control"`     // drain and resume work
	Latency   bool           `json:"latency"`     // p50 and p99 are measured
}

// point is one moment of the charts, sent as [t, rate, errors, p50, p99]:
// Unix milliseconds, requests and failures per second over the last
// interval, percentiles in milliseconds over the window (null: none).
type point struct {
	T        int64
	Rate     float64
	Errors   float64
	P50, P99 float64 // NaN: no request in the window, or no histogram
}

func (p point) MarshalJSON() ([]byte, error) {
	ms := func(x float64) any {
		if math.IsNaN(x) {
			return nil
		}
		return math.Round(x*1e6) / 1e3 // seconds to milliseconds, to the µs
	}
	return json.Marshal([]any{p.T, math.Round(p.Rate*10) / 10, math.Round(p.Errors*10) / 10, ms(p.P50), ms(p.P99)})
}

// frame is one server-sent event. A full frame replaces the page's state;
// the others carry what changed since the previous frame.
type frame struct {
	Now        int64    `json:"now"` // the server's clock, for heartbeat ages
	Full       bool     `json:"full,omitempty"`
	Dispatcher summary  `json:"dispatcher"`
	Rows       []row    `json:"rows,omitempty"`
	Gone       []string `json:"gone,omitempty"`
	Shown      int      `json:"shown"` // rows on the page; below Total when cut
	Points     []point  `json:"points,omitempty"`
	Cluster    []peer   `json:"cluster"`
}

// sample is a latency histogram at one moment.
type sample struct {
	at time.Time
	b  buckets
}

// clientBuffer is how many frames a slow page may lag behind before it is
// cut off; its browser reconnects and starts again from a full frame.
const clientBuffer = 8

// hub turns samples of the dispatcher into frames and hands them to every
// page watching.
type hub struct {
	cfg     *Config
	control bool
	cluster func() []peer // nil without a connection

	mu      sync.Mutex
	closed  bool
	clients map[chan []byte]struct{}
	tab     table // what the pages hold; nil while nobody watches
	head    summary
	points  []point
	lat     []sample // within the window, oldest first
	last    wire.Status
	lastAt  time.Time
}

func newHub(cfg *Config, control bool) *hub {
	return &hub{cfg: cfg, control: control, clients: map[chan []byte]struct{}{}}
}

func (h *hub) peers() []peer {
	if h.cluster == nil {
		return []peer{}
	}
	return h.cluster()
}

func (h *hub) summarize(st wire.Status) summary {
	drained := 0
	for _, w := range st.Workers {
		if w.Drained {
			drained++
		}
	}
	return summary{Drained: drained, ID: st.Dispatcher, Version: st.Version, Strategy: st.Strategy, StartedAt: st.StartedAt.UnixMilli(),
		Inflight: st.Inflight, Served: st.Served, Failed: st.Failed, Total: st.Total, Counts: st.Counts,
		Interval: h.cfg.Interval.Milliseconds(), Control: h.control, Latency: h.cfg.Gatherer != nil}
}

// tick records a sample taken at now and sends the pages what changed.
func (h *hub) tick(now time.Time, st wire.Status, lat buckets, latOK bool) {
	p := point{T: now.UnixMilli(), P50: math.NaN(), P99: math.NaN()}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.lastAt.IsZero() {
		if dt := now.Sub(h.lastAt).Seconds(); dt > 0 && st.Served >= h.last.Served && st.Failed >= h.last.Failed {
			p.Rate = float64(st.Served+st.Failed-h.last.Served-h.last.Failed) / dt
			p.Errors = float64(st.Failed-h.last.Failed) / dt
		}
	}
	h.last, h.lastAt = st, now
	if latOK {
		h.lat = append(h.lat, sample{now, lat})
		for len(h.lat) > 1 && now.Sub(h.lat[0].at) > h.cfg.Window {
			h.lat = h.lat[1:]
		}
		d := lat.since(h.lat[0].b)
		p.P50, p.P99 = d.quantile(0.5), d.quantile(0.99)
	}
	if len(h.points) == h.cfg.History {
		h.points = append(h.points[:0], h.points[1:]...)
	}
	h.points = append(h.points, p)
	h.head = h.summarize(st)
	if h.tab == nil {
		return // nobody watches: no rows to compare
	}
	rows := pick(st.Workers, h.cfg.MaxRows)
	changed, gone := h.tab.update(rows)
	f := frame{Now: p.T, Dispatcher: h.head, Rows: changed, Gone: gone, Shown: len(rows), Points: []point{p}, Cluster: h.peers()}
	b, _ := json.Marshal(f)
	for c := range h.clients {
		select {
		case c <- b:
		default: // too slow: cut off, its browser reconnects
			delete(h.clients, c)
			close(c)
		}
	}
}

// Why join refuses a page.
var (
	errClosed  = errors.New("dashboard: closing")
	errTooMany = errors.New("dashboard: too many pages open")
)

// join adds a page and returns its first, full frame and the channel of
// the next ones, which is closed when the page is cut off or the hub
// closes. It refuses a page once the hub is closed or MaxPages watch.
func (h *hub) join(src Source) (first []byte, c chan []byte, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, nil, errClosed
	}
	if len(h.clients) >= h.cfg.MaxPages {
		return nil, nil, errTooMany
	}
	if h.tab == nil {
		st := src.Status()
		h.tab = table{}
		h.tab.update(pick(st.Workers, h.cfg.MaxRows))
		h.head = h.summarize(st)
	}
	rows := h.tab.rows()
	f := frame{Now: time.Now().UnixMilli(), Full: true, Dispatcher: h.head, Rows: rows, Shown: len(rows),
		Points: h.points, Cluster: h.peers()}
	first, _ = json.Marshal(f)
	c = make(chan []byte, clientBuffer)
	h.clients[c] = struct{}{}
	return first, c, nil
}

// leave removes a page; when it was the last one, the table is forgotten.
func (h *hub) leave(c chan []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.clients[c]; ok {
		delete(h.clients, c)
		close(c)
	}
	if len(h.clients) == 0 {
		h.tab = nil
	}
}

// close ends every page's stream; later joins fail.
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for c := range h.clients {
		delete(h.clients, c)
		close(c)
	}
}
