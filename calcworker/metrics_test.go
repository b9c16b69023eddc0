package calcworker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/calcworker"
	"github.com/bilancia/bilancia/internal/metrics"
	"github.com/bilancia/bilancia/internal/metrics/metricstest"
	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

// TestMetrics scrapes over HTTP the metrics two workers share: requests by
// op and status and their durations match what was sent to either, an
// unknown op counts as other, a cancelled request as cancelled, and the
// workers, their heartbeats and what they hold are counted.
func TestMetrics(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	m := calcworker.NewMetrics()
	wa := start(t, url, calcworker.Config{ID: "w-a", Metrics: m, Heartbeat: 20 * time.Millisecond})
	wb := start(t, url, calcworker.Config{ID: "w-b", Metrics: m, Concurrency: 1})
	srv, err := metrics.Serve("127.0.0.1:0", m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close(context.Background()) })
	nc := connect(t, url)
	for range 5 {
		request(t, nc, wa.Subject(), "add 2 3")
	}
	for range 3 {
		request(t, nc, wb.Subject(), `{"op":"mul","args":[4,5]}`)
	}
	for range 2 {
		request(t, nc, wa.Subject(), "div 1 0")
	}
	request(t, nc, wb.Subject(), "nope 1")

	// A request held for progress and cancelled gets no reply: it counts
	// as cancelled, and in flight until then.
	held := nats.NewMsg(wb.Subject())
	held.Reply = nats.NewInbox()
	held.Header.Set(wire.HdrRequestID, "held")
	held.Header.Set(wire.HdrProgress, "1")
	held.Data = []byte("sleep 5000")
	if err := nc.PublishMsg(held); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		f, err := metricstest.Scrape(srv.URL())
		if err != nil {
			return err
		}
		return f.Want(1, "bilancia_worker_requests_in_flight")
	})
	cancel := nats.NewMsg(wb.Subject())
	cancel.Header.Set(wire.HdrCancel, "held")
	if err := nc.PublishMsg(cancel); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		f, err := metricstest.Scrape(srv.URL())
		if err != nil {
			return err
		}
		for _, c := range []struct {
			name   string
			labels []string
			want   float64
		}{
			{"bilancia_worker_requests_total", []string{"op", "add", "status", "200"}, 5},
			{"bilancia_worker_requests_total", []string{"op", "mul", "status", "200"}, 3},
			{"bilancia_worker_requests_total", []string{"op", "div", "status", "400"}, 2},
			{"bilancia_worker_requests_total", []string{"op", "other", "status", "400"}, 1},
			{"bilancia_worker_requests_total", []string{"op", "sleep", "status", "cancelled"}, 1},
			{"bilancia_worker_requests_total", []string{"op", "nope"}, -1}, // never a label
			{"bilancia_worker_request_duration_seconds", []string{"op", "add"}, 5},
			{"bilancia_worker_request_duration_seconds", []string{"op", "mul"}, 3},
			{"bilancia_worker_request_duration_seconds", []string{"op", "sleep"}, 0},
			{"bilancia_worker_requests_in_flight", nil, 0},
			{"bilancia_worker_workers", nil, 2},
		} {
			if c.want < 0 {
				if f.Sum(c.name, c.labels...) != 0 {
					return fmt.Errorf("%s%v counted", c.name, c.labels)
				}
				continue
			}
			if err := f.Want(c.want, c.name, c.labels...); err != nil {
				return err
			}
		}
		// w-a heartbeats every 20ms: more than its first two.
		if hb, _ := f.Value("bilancia_worker_heartbeats_total"); hb < 4 {
			return fmt.Errorf("heartbeats = %v; want at least 4", hb)
		}
		return nil
	})
	if err := wb.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	f, err := metricstest.Scrape(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Want(1, "bilancia_worker_workers"); err != nil {
		t.Error(err)
	}
	metricstest.CheckLint(t, m.Registry())
}
