package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/internal/natsutil"
	"github.com/bilancia/bilancia/wire"
)

// HealthCmd checks one role, for container health checks: it exits 0 and
// prints one line when the role is healthy, and exits 1 with the reason
// otherwise. It needs no shell or other tool, so that it runs inside the
// scratch image in exec form:
//
//	healthcheck: {test: [CMD, /bilancia, health, broker]}
type HealthCmd struct {
	Broker     HealthBrokerCmd     `cmd:"" help:"Check that a broker answers over NATS (or its /healthz, with --url)."`
	Dispatcher HealthDispatcherCmd `cmd:"" help:"Check that a dispatcher answers <prefix>.status."`
	Worker     HealthWorkerCmd     `cmd:"" help:"Check that a worker heartbeats as up (and, with --seen-by, that dispatchers list it up)."`
	Load       LoadCheckCmd        `cmd:"" hidden:"" help:"Send a bounded, checked load, optionally injecting a fault; used by scripts/compose-test."`
}

// healthDialTimeout bounds the dial of each NATS server tried, so that an
// unreachable one in --nats leaves time for the next.
const healthDialTimeout = time.Second

// unhealthy is the exit status of a failed check.
func unhealthy(format string, args ...any) error {
	return &exitError{1, "unhealthy: " + fmt.Sprintf(format, args...)}
}

// HealthBrokerCmd checks a broker: over NATS, as every other check, or
// through its monitoring endpoint when given --url.
type HealthBrokerCmd struct {
	NATSFlags
	URL     string        `help:"Ask this monitoring endpoint instead, e.g. http://127.0.0.1:8222/healthz (needs broker --http-port)."`
	Timeout time.Duration `default:"3s" help:"Give up after this long."`
}

func (c *HealthBrokerCmd) Run(g *globals) error {
	ctx, cancel := context.WithTimeout(g.ctx, c.Timeout)
	defer cancel()
	if c.URL != "" {
		return healthHTTP(ctx, c.URL)
	}
	nc, err := healthConn(ctx, &c.NATSFlags)
	if err != nil {
		return err
	}
	defer nc.Close()
	// A round trip: the broker reads and answers, not merely accepts.
	if err := nc.FlushWithContext(ctx); err != nil {
		return unhealthy("%s did not answer a ping: %v", nc.ConnectedUrlRedacted(), err)
	}
	fmt.Printf("healthy: broker %s (nats-server %s) at %s answers\n", nc.ConnectedServerName(), nc.ConnectedServerVersion(), nc.ConnectedUrlRedacted())
	return nil
}

// healthHTTP asks a broker's monitoring endpoint.
func healthHTTP(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return &exitError{2, err.Error()}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return unhealthy("%v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return unhealthy("%s answered %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	fmt.Printf("healthy: %s %s\n", url, strings.TrimSpace(string(body)))
	return nil
}

// healthConn dials NATS once, without reconnecting: a check is short-lived.
func healthConn(ctx context.Context, f *NATSFlags) (*nats.Conn, error) {
	opts, err := f.options()
	if err != nil {
		return nil, &exitError{2, err.Error()}
	}
	timeout := healthDialTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	opts = append(opts, nats.Name("bilancia-health"), nats.NoReconnect(), nats.Timeout(timeout))
	nc, err := nats.Connect(f.NATS, opts...)
	if err != nil {
		return nil, unhealthy("no NATS server answered at %s: %v", f.NATS, err)
	}
	return nc, nil
}

// statusEvery is how often a check asks the dispatchers again, so that
// one starting up or a request lost in a reconnect does not fail it.
const statusEvery = 250 * time.Millisecond

// statuses asks every dispatcher for its view, again every statusEvery,
// and returns the answers as they arrive on the channel, which is closed
// when ctx ends. req is the request's payload (a wire.StatusRequest), nil
// for the whole table. none, if not nil, is called when the broker says
// that no dispatcher listens; else it asks again at the next tick.
func statuses(ctx context.Context, nc *nats.Conn, subj wire.Subjects, req []byte, none func()) (<-chan wire.Status, error) {
	msgs := make(chan *nats.Msg, 64)
	inbox := nc.NewInbox()
	sub, err := nc.ChanSubscribe(inbox, msgs)
	if err != nil {
		return nil, err
	}
	if err := nc.PublishRequest(subj.Status(), inbox, req); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	out := make(chan wire.Status)
	go func() {
		defer close(out)
		defer sub.Unsubscribe()
		t := time.NewTicker(statusEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_ = nc.PublishRequest(subj.Status(), inbox, req)
			case m := <-msgs:
				if natsutil.IsNoResponders(m) {
					if none != nil {
						none()
					}
					continue // none yet: ask again at the next tick
				}
				st, err := wire.DecodeStatus(m.Data)
				if err != nil {
					continue
				}
				select {
				case out <- st:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// HealthDispatcherCmd checks a dispatcher.
type HealthDispatcherCmd struct {
	NATSFlags
	ID      string        `help:"The dispatcher's --id, which the check waits for until --timeout; empty: any dispatcher answering will do, and none listening fails the check at once."`
	Timeout time.Duration `default:"3s" help:"Give up after this long."`
}

func (c *HealthDispatcherCmd) Run(g *globals) error {
	ctx, cancel := context.WithTimeout(g.ctx, c.Timeout)
	defer cancel()
	nc, err := healthConn(ctx, &c.NATSFlags)
	if err != nil {
		return err
	}
	defer nc.Close()
	// No dispatcher listening is an answer: said at once, as status
	// does, unless the check waits for the one --id names to start.
	var none atomic.Bool
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var onNone func()
	if c.ID == "" {
		onNone = func() { none.Store(true); stop() }
	}
	answers, err := statuses(ctx, nc, wire.Subjects{Prefix: c.Prefix}, nil, onNone)
	if err != nil {
		return unhealthy("%v", err)
	}
	seen := map[string]bool{}
	for st := range answers {
		if c.ID == "" || st.Dispatcher == c.ID {
			// Counts and Total cover the whole table, even when its rows
			// are cut to fit the broker's max payload.
			fmt.Printf("healthy: dispatcher %s answers, %d of %d workers up, served %d, failed %d\n",
				st.Dispatcher, st.Counts[wire.StateUp], st.Total, st.Served, st.Failed)
			return nil
		}
		seen[st.Dispatcher] = true
	}
	if none.Load() && len(seen) == 0 {
		return unhealthy("%v", wire.NewError(wire.CodeUnavailable, "no dispatcher answers on "+wire.Subjects{Prefix: c.Prefix}.Status()))
	}
	if c.ID == "" {
		return unhealthy("no dispatcher answered %s within %v", wire.Subjects{Prefix: c.Prefix}.Status(), c.Timeout)
	}
	return unhealthy("dispatcher %s did not answer within %v (answered: %s)", c.ID, c.Timeout, strings.Join(slices.Sorted(maps.Keys(seen)), ", "))
}

// HealthWorkerCmd checks a worker from its heartbeats.
type HealthWorkerCmd struct {
	NATSFlags
	ID      string        `required:"" help:"The worker's --id."`
	SeenBy  int           `help:"Also require this many dispatchers to list the worker up (0 = the heartbeat is enough)."`
	Timeout time.Duration `default:"3s" help:"Give up after this long; at least a few heartbeat intervals."`
}

func (c *HealthWorkerCmd) Run(g *globals) error {
	ctx, cancel := context.WithTimeout(g.ctx, c.Timeout)
	defer cancel()
	nc, err := healthConn(ctx, &c.NATSFlags)
	if err != nil {
		return err
	}
	defer nc.Close()
	subj := wire.Subjects{Prefix: c.Prefix}
	beats := make(chan *nats.Msg, 16)
	sub, err := nc.ChanSubscribe(subj.Heartbeat(c.ID), beats)
	if err != nil {
		return unhealthy("%v", err)
	}
	defer sub.Unsubscribe()

	var hb wire.Heartbeat
	for hb.State != wire.StateUp {
		select {
		case m := <-beats:
			hb = wire.Heartbeat{}
			_ = json.Unmarshal(m.Data, &hb)
		case <-ctx.Done():
			if hb.State != "" {
				return unhealthy("worker %s heartbeats as %s", c.ID, hb.State)
			}
			return unhealthy("no heartbeat from worker %s within %v", c.ID, c.Timeout)
		}
	}
	if c.SeenBy <= 0 {
		fmt.Printf("healthy: worker %s up, seq %d, served %d, inflight %d\n", c.ID, hb.Seq, hb.Served, hb.Inflight)
		return nil
	}

	// Only its row: the whole table may not fit in one reply.
	req, _ := json.Marshal(wire.StatusRequest{Workers: []string{c.ID}})
	answers, err := statuses(ctx, nc, subj, req, nil)
	if err != nil {
		return unhealthy("%v", err)
	}
	// The latest state each dispatcher gives the worker.
	states := map[string]string{}
	for st := range answers {
		state := "absent"
		for _, w := range st.Workers {
			if w.ID == c.ID {
				state = w.State
			}
		}
		states[st.Dispatcher] = state
		var by []string
		for d, s := range states {
			if s == wire.StateUp {
				by = append(by, d)
			}
		}
		if len(by) >= c.SeenBy {
			slices.Sort(by)
			fmt.Printf("healthy: worker %s up, seq %d, served %d, listed up by %s\n", c.ID, hb.Seq, hb.Served, strings.Join(by, ", "))
			return nil
		}
	}
	var views []string
	for _, d := range slices.Sorted(maps.Keys(states)) {
		views = append(views, d+"="+states[d])
	}
	return unhealthy("worker %s heartbeats, but fewer than %d dispatchers list it up within %v (%s)",
		c.ID, c.SeenBy, c.Timeout, strings.Join(views, ", "))
}
