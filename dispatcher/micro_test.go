package dispatcher_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/calcworker"
	"github.com/bilancia/bilancia/dispatcher"
	"github.com/bilancia/bilancia/internal/testutil"
)

// microStats asks one service instance for its $SRV.STATS.
func microStats(t *testing.T, nc *nats.Conn, name, id string) micro.Stats {
	t.Helper()
	m, err := nc.Request("$SRV.STATS."+name+"."+id, nil, 5*time.Second)
	if err != nil {
		t.Fatalf("$SRV.STATS.%s.%s: %v", name, id, err)
	}
	var st micro.Stats
	if err := json.Unmarshal(m.Data, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestMicroDiscovery: dispatchers and workers answer micro's PING, INFO
// and STATS, their request counts and errors read from their counters;
// a stopped one no longer answers.
func TestMicroDiscovery(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, func(c *dispatcher.Config) { c.ID = "d-m" })
	startWorker(t, url, "w-m", nil)
	waitState(t, d, up("w-m"))
	cl := newClient(t, url, nil)
	errs := load(t, cl, 10, 2, func(i int) string {
		if i < 3 {
			return "div 1 0" // an error reply, relayed
		}
		return fmt.Sprintf("add %d 1", i)
	}, nil)
	if len(errs) != 3 {
		t.Fatalf("%d errors; want the 3 divisions by zero: %v", len(errs), errs)
	}
	nc := connect(t, url)

	seen := map[string]bool{}
	sub, _ := nc.SubscribeSync(nc.NewInbox())
	if err := nc.PublishRequest("$SRV.PING", sub.Subject, nil); err != nil {
		t.Fatal(err)
	}
	for len(seen) < 2 {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("$SRV.PING answered by %v: %v", seen, err)
		}
		var p micro.Ping
		_ = json.Unmarshal(m.Data, &p)
		seen[p.Name+"/"+p.ID] = true
	}
	if !seen[dispatcher.ServiceName+"/d-m"] || !seen[calcworker.ServiceName+"/w-m"] {
		t.Fatalf("$SRV.PING answered by %v", seen)
	}

	m, err := nc.Request("$SRV.INFO."+dispatcher.ServiceName+".d-m", nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var info micro.Info
	_ = json.Unmarshal(m.Data, &info)
	if info.Metadata["id"] != "d-m" || info.Metadata["prefix"] != "calc" || len(info.Endpoints) != 3 ||
		info.Endpoints[0].Subject != "calc.request" || info.Endpoints[0].QueueGroup != "dispatchers" {
		t.Fatalf("dispatcher info = %+v", info)
	}

	// The worker counts its reply before it publishes it, the dispatcher
	// after it relayed it: both are at 10 once the client has its 10.
	ds := microStats(t, nc, dispatcher.ServiceName, "d-m").Endpoints[0]
	if ds.Name != "request" || ds.NumRequests != 10 || ds.NumErrors != 3 || ds.ProcessingTime <= 0 {
		t.Fatalf("dispatcher request endpoint = %+v; want 10 requests, 3 errors", ds)
	}
	ws := microStats(t, nc, calcworker.ServiceName, "w-m").Endpoints[0]
	if ws.Name != "calc" || ws.Subject != "calc.worker.w-m" || ws.NumRequests != 10 || ws.NumErrors != 3 || ws.ProcessingTime <= 0 {
		t.Fatalf("worker calc endpoint = %+v; want 10 requests, 3 errors", ws)
	}
	if st := microStats(t, nc, dispatcher.ServiceName, "d-m").Endpoints[1]; st.Name != "status" {
		t.Fatalf("second endpoint = %+v; want status", st)
	}

	if err := d.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if _, err := nc.Request("$SRV.PING."+dispatcher.ServiceName, nil, time.Second); err == nil {
			return fmt.Errorf("a stopped dispatcher answers")
		}
		return nil
	})
}
