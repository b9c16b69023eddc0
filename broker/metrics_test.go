package broker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/internal/metrics"
	"github.com/bilancia/bilancia/internal/metrics/metricstest"
	"github.com/bilancia/bilancia/internal/testutil"
)

// TestMetrics scrapes a broker's figures over HTTP: the connections and
// subscriptions open and the messages it carried, as its Varz counts them
// at the scrape.
func TestMetrics(t *testing.T) {
	b := brokertest.Run(t)
	reg := metrics.Registry(b.Collector())
	srv, err := metrics.Serve("127.0.0.1:0", reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close(context.Background()) })
	f, err := metricstest.Scrape(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	base, _ := f.Value("bilancia_broker_received_messages_total")
	if got, ok := f.Value("bilancia_broker_connections"); !ok || got != 0 {
		t.Errorf("connections before any = %v (found: %v); want 0", got, ok)
	}

	nc, err := nats.Connect(b.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("t.metrics")
	if err != nil {
		t.Fatal(err)
	}
	const n = 25
	for range n {
		if err := nc.Publish("t.metrics", make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		if _, err := sub.NextMsg(5 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		f, err := metricstest.Scrape(srv.URL())
		if err != nil {
			return err
		}
		for _, c := range []struct {
			name string
			min  float64
		}{
			{"bilancia_broker_connections", 1},
			{"bilancia_broker_connections_total", 1},
			{"bilancia_broker_subscriptions", 1},
			{"bilancia_broker_received_messages_total", base + n},
			{"bilancia_broker_sent_messages_total", n},
			{"bilancia_broker_received_bytes_total", n * 100},
			{"bilancia_broker_sent_bytes_total", n * 100},
		} {
			if got, ok := f.Value(c.name); !ok || got < c.min {
				return fmt.Errorf("%s = %v (found: %v); want at least %v", c.name, got, ok, c.min)
			}
		}
		for _, name := range []string{"bilancia_broker_routes", "bilancia_broker_slow_consumers_total"} {
			if err := f.Want(0, name); err != nil {
				return err
			}
		}
		return nil
	})
	metricstest.CheckLint(t, reg)

	b.Shutdown()
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 0 {
		t.Errorf("a broker shut down gathers %d families, %v; want none", len(mfs), err)
	}
}
