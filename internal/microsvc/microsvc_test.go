package microsvc_test

import (
	"encoding/json"
	"errors"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/internal/microsvc"
)

func connect(t *testing.T) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(brokertest.Run(t).ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// gather sends a request on subj and collects replies until none comes
// for a while.
func gather(t *testing.T, nc *nats.Conn, subj string) [][]byte {
	t.Helper()
	sub, err := nc.SubscribeSync(nc.NewInbox())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(subj, sub.Subject, nil); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	wait := 5 * time.Second
	for {
		m, err := sub.NextMsg(wait)
		if err != nil {
			return out
		}
		out = append(out, m.Data)
		wait = 200 * time.Millisecond
	}
}

// TestDiscovery: PING, INFO and STATS answer as micro's, at every level,
// beside a service of micro's own; STATS reads the counters when asked.
func TestDiscovery(t *testing.T) {
	nc := connect(t)
	var served atomic.Uint64
	svc, err := microsvc.Start(nc, microsvc.Config{
		Name: "bilancia-test", ID: "t-1", Version: "0.1.0", Metadata: map[string]string{"id": "t-1"},
		Endpoints: []microsvc.Endpoint{{Name: "request", Subject: "calc.request", QueueGroup: "dispatchers",
			Counts: func() microsvc.Counts {
				n := served.Load()
				return microsvc.Counts{Requests: n, Errors: 1, Processing: time.Duration(n) * time.Millisecond}
			}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	other, err := micro.AddService(nc, micro.Config{Name: "other", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Stop()

	var names []string
	for _, b := range gather(t, nc, "$SRV.PING") {
		var p micro.Ping
		if err := json.Unmarshal(b, &p); err != nil || p.Type != micro.PingResponseType {
			t.Fatalf("ping reply %s: %v", b, err)
		}
		names = append(names, p.Name)
	}
	sort.Strings(names)
	if len(names) != 2 || names[0] != "bilancia-test" || names[1] != "other" {
		t.Fatalf("$SRV.PING answered by %v; want bilancia-test and other", names)
	}

	infos := gather(t, nc, "$SRV.INFO.bilancia-test")
	var info micro.Info
	if len(infos) != 1 || json.Unmarshal(infos[0], &info) != nil {
		t.Fatalf("$SRV.INFO.bilancia-test: %q", infos)
	}
	if info.ID != "t-1" || info.Metadata["id"] != "t-1" || len(info.Endpoints) != 1 ||
		info.Endpoints[0].Subject != "calc.request" || info.Endpoints[0].QueueGroup != "dispatchers" {
		t.Fatalf("info = %+v", info)
	}

	served.Store(4)
	stats := gather(t, nc, "$SRV.STATS.bilancia-test.t-1")
	var st micro.Stats
	if len(stats) != 1 || json.Unmarshal(stats[0], &st) != nil {
		t.Fatalf("$SRV.STATS.bilancia-test.t-1: %q", stats)
	}
	if st.Type != micro.StatsResponseType || len(st.Endpoints) != 1 {
		t.Fatalf("stats = %+v", st)
	}
	if e := st.Endpoints[0]; e.NumRequests != 4 || e.NumErrors != 1 || e.ProcessingTime != 4*time.Millisecond ||
		e.AverageProcessingTime != time.Millisecond {
		t.Fatalf("endpoint stats = %+v; want 4 requests, 1 error, 4ms, 1ms on average", e)
	}
	if got := gather(t, nc, "$SRV.PING.bilancia-test.t-2"); len(got) != 0 {
		t.Fatalf("another id's ping answered: %q", got)
	}

	svc.Stop()
	svc.Stop()
	if _, err := nc.Request("$SRV.PING.bilancia-test", nil, 5*time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("a stopped service's ping: %v; want no responders", err)
	}
}

// TestStartRefuses: names micro would refuse are refused; a bad id is
// replaced by a fresh one.
func TestStartRefuses(t *testing.T) {
	nc := connect(t)
	for _, cfg := range []microsvc.Config{
		{Name: "a.b", Version: "0.1.0"},
		{Name: "", Version: "0.1.0"},
		{Name: "ok", Version: ""},
		{Name: "ok", Version: "0.1.0", Endpoints: []microsvc.Endpoint{{Name: "a b", Subject: "x"}}},
	} {
		if svc, err := microsvc.Start(nc, cfg); err == nil {
			svc.Stop()
			t.Errorf("Start(%+v) succeeded", cfg)
		}
	}
	svc, err := microsvc.Start(nc, microsvc.Config{Name: "ok", ID: "a.b", Version: "0.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	if svc.ID() == "a.b" || svc.ID() == "" {
		t.Fatalf("ID() = %q; want a fresh one", svc.ID())
	}
}
