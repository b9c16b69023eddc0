package main

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/internal/testutil"
)

// TestDispatcherAndWorkerRoles runs the dispatcher role (two connections,
// the second paced) and the worker role with --replicas 3 against a
// broker, as their processes would: requests reach all three replicas,
// and both roles stop on their signal leaving nothing behind.
func TestDispatcherAndWorkerRoles(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	b := brokertest.Run(t)
	defer b.Shutdown()
	nf := NATSFlags{NATS: b.ClientURL(), Prefix: "calc", PingInterval: 5 * time.Second}
	d := &DispatcherCmd{NATSFlags: nf, DispatcherFlags: DispatcherFlags{
		ID: "d-test", Heartbeat: 100 * time.Millisecond, RequestTimeout: 5 * time.Second, AttemptTimeout: time.Second,
		MaxAttempts: 3, MaxInflight: 100, Strategy: "round-robin", EjectAfter: 5, EjectFor: 5 * time.Second,
		Log: filepath.Join(t.TempDir(), "loadbalancer.log"), LogRequests: true,
	}}
	w := &WorkerCmd{NATSFlags: nf, ID: "w-test", Replicas: 3, Heartbeat: 100 * time.Millisecond,
		WorkerFlags: WorkerFlags{Concurrency: 4, MaxSleep: time.Second, MaxSpin: time.Second}}

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	errs := make(chan error, 2)
	go func() { errs <- d.Run(&globals{ctx: ctx}) }()
	go func() { errs <- w.Run(&globals{ctx: ctx}) }()

	cl, err := client.Connect(client.Config{URL: b.ClientURL(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	served := map[string]bool{}
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		r, err := cl.Do(context.Background(), "add 2 3")
		if err != nil {
			return err
		}
		if got := r.ResultString(); got != "5" {
			t.Fatalf("add 2 3 = %s; want 5", got)
		}
		served[r.Worker] = true
		if len(served) < 3 {
			return fmt.Errorf("served by %v; want w-test-0, w-test-1 and w-test-2", served)
		}
		return nil
	})
	for i := range 3 {
		if id := fmt.Sprintf("w-test-%d", i); !served[id] {
			t.Errorf("no request served by %s (served by %v)", id, served)
		}
	}
	cl.Close()

	stop()
	waitRoles(t, errs, 2)
}

// waitRoles waits for n roles to end on their errs, each without error.
func waitRoles(t *testing.T, errs <-chan error, n int) {
	t.Helper()
	for range n {
		select {
		case err := <-errs:
			if err != nil {
				t.Errorf("role ended with %v; want nil", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("a role did not stop")
		}
	}
}
