package dashboard

import (
	"cmp"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/wire"
)

// peer is a dispatcher of the cluster as its last status reply showed it.
type peer struct {
	ID       string `json:"id"`
	Version  string `json:"version"`
	Strategy string `json:"strategy"`
	Total    int    `json:"total"`
	Up       int    `json:"up"`
	Inflight int64  `json:"inflight"`
	Served   uint64 `json:"served"`
	Failed   uint64 `json:"failed"`
	Seen     int64  `json:"seen"` // its last reply, Unix milliseconds
}

// summaryRequest asks dispatchers for their counts without rows: it names
// one worker, and "." can be no worker's id (wire.ValidID), so the reply
// stays small however large each table is.
var summaryRequest, _ = json.Marshal(wire.StatusRequest{Workers: []string{"."}})

// cluster asks every dispatcher on the bus for its summary, every
// interval, and keeps the answers of those heard in the last 3 intervals.
type cluster struct {
	nc    *nats.Conn
	subj  wire.Subjects
	every time.Duration
	inbox string
	sub   *nats.Subscription

	mu    sync.Mutex
	peers map[string]peer
}

func startCluster(nc *nats.Conn, prefix string, every time.Duration) (*cluster, error) {
	c := &cluster{nc: nc, subj: wire.Subjects{Prefix: prefix}, every: every, inbox: nc.NewInbox(), peers: map[string]peer{}}
	sub, err := nc.Subscribe(c.inbox, c.onReply)
	if err != nil {
		return nil, err
	}
	c.sub = sub
	return c, nil
}

func (c *cluster) onReply(m *nats.Msg) {
	st, err := wire.DecodeStatus(m.Data)
	if err != nil {
		return // no responders, or not a dispatcher
	}
	p := peer{ID: st.Dispatcher, Version: st.Version, Strategy: st.Strategy, Total: st.Total, Up: st.Counts[wire.StateUp],
		Inflight: st.Inflight, Served: st.Served, Failed: st.Failed, Seen: time.Now().UnixMilli()}
	c.mu.Lock()
	c.peers[p.ID] = p
	c.mu.Unlock()
}

// ask sends one status request to every dispatcher and forgets those
// silent for 3 intervals.
func (c *cluster) ask(now time.Time) {
	_ = c.nc.PublishRequest(c.subj.Status(), c.inbox, summaryRequest)
	old := now.Add(-3 * c.every).UnixMilli()
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, p := range c.peers {
		if p.Seen < old {
			delete(c.peers, id)
		}
	}
}

// list returns the dispatchers heard from, by id.
func (c *cluster) list() []peer {
	c.mu.Lock()
	out := make([]peer, 0, len(c.peers))
	for _, p := range c.peers {
		out = append(out, p)
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b peer) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

func (c *cluster) stop() { _ = c.sub.Unsubscribe() }
