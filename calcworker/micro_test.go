package calcworker_test

import (
	"context"
	"encoding/json"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/calcworker"
)

// TestMicroSharedWorkers: the workers of a Shared pool each answer micro
// discovery under their id, through the pool (no goroutine each), with
// their own counts; a stopped one no longer answers.
func TestMicroSharedWorkers(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	wnc := connect(t, url)
	shared := calcworker.NewShared(2, 0)
	defer shared.Close()
	const n = 50
	before := runtime.NumGoroutine()
	workers := startSims(t, wnc, shared, n)
	defer func() {
		for _, w := range workers {
			_ = w.Shutdown(context.Background())
		}
		wnc.Close()
	}()
	if grew := runtime.NumGoroutine() - before; grew >= n {
		t.Fatalf("%d workers of a pool started %d goroutines", n, grew)
	}
	nc := connect(t, url)
	sub, err := nc.SubscribeSync(nc.NewInbox())
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.PublishRequest("$SRV.PING."+calcworker.ServiceName, sub.Subject, nil); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for len(seen) < n {
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("pings answered by %d of %d workers: %v", len(seen), n, err)
		}
		var p micro.Ping
		if err := json.Unmarshal(m.Data, &p); err != nil || p.Name != calcworker.ServiceName {
			t.Fatalf("ping reply %s: %v", m.Data, err)
		}
		seen[p.ID] = true
	}

	request(t, nc, workers[7].Subject(), "add 2 3")
	request(t, nc, workers[7].Subject(), "div 1 0")
	m, err := nc.Request("$SRV.STATS."+calcworker.ServiceName+".sim-7", nil, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var st micro.Stats
	if err := json.Unmarshal(m.Data, &st); err != nil || len(st.Endpoints) != 1 {
		t.Fatalf("stats %s: %v", m.Data, err)
	}
	if e := st.Endpoints[0]; e.Subject != "calc.worker.sim-7" || e.NumRequests != 2 || e.NumErrors != 1 || e.ProcessingTime <= 0 {
		t.Fatalf("sim-7's calc endpoint = %+v; want 2 requests, 1 error", e)
	}

	if err := workers[7].Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Request("$SRV.PING."+calcworker.ServiceName+".sim-7", nil, 500*time.Millisecond); err == nil {
		t.Fatal("a stopped worker answers discovery")
	}
}
