package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bilancia/bilancia/internal/testutil"
)

// TestUpDashboard: up --http serves the dashboard of its dispatcher, with
// its workers, while it runs, and stops serving it when it ends.
func TestUpDashboard(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	base := "http://127.0.0.1:" + strconv.Itoa(metricsPort(t)) + "/"
	df := testDispatcherFlags(t)
	df.HTTP = strings.TrimSuffix(strings.TrimPrefix(base, "http://"), "/")
	up := &UpCmd{
		Host: "127.0.0.1", Port: -1, Prefix: "calc", Workers: 2,
		DispatcherFlags: df,
		WorkerFlags:     WorkerFlags{Concurrency: 4, MaxSleep: time.Minute, MaxSpin: time.Second},
		ClientFlags:     ClientFlags{Timeout: time.Minute, Retries: 0, Inflight: 1, Quiet: true},
		// Held long enough for a slow machine to read the page, and then
		// answered: up ends.
		Command: []string{"sleep 4000"},
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- up.Run(&globals{ctx: ctx}) }()

	testutil.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		resp, err := http.Get(base + "events")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var f struct {
				Dispatcher struct {
					Counts map[string]int `json:"counts"`
				} `json:"dispatcher"`
				Rows [][]any `json:"rows"`
			}
			if err := json.Unmarshal([]byte(data), &f); err != nil {
				t.Fatalf("first frame %q: %v", data, err)
			}
			if f.Dispatcher.Counts["up"] != 2 || len(f.Rows) != 2 {
				return fmt.Errorf("first frame: %s; want 2 workers up", data)
			}
			return nil
		}
		return fmt.Errorf("no frame: %v", sc.Err())
	})
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("up: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("up did not end")
	}
	if resp, err := http.Get(base); err == nil {
		resp.Body.Close()
		t.Errorf("GET %s after up ended: %s; want no answer", base, resp.Status)
	}
}

// TestUpDashboardPortTaken: with 127.0.0.1:8080 held by another program,
// up's dashboard goes to a free port instead of failing the session.
func TestUpDashboardPortTaken(t *testing.T) {
	if ln, err := net.Listen("tcp", upDashboardAddr); err == nil {
		defer ln.Close()
	} // else something else holds it already: taken all the same
	if got := defaultDashboardAddr(); got != "127.0.0.1:0" {
		t.Fatalf("with %s taken, up's dashboard address is %q; want 127.0.0.1:0", upDashboardAddr, got)
	}
}
