package broker

import (
	"context"
	"testing"
	"time"
)

// RunTestServer starts a broker on a random loopback port for a test and
// shuts it down at cleanup, so that tests in other packages run against a
// real nats-server without fixed ports.
func RunTestServer(t testing.TB) *Broker {
	t.Helper()
	b, err := New(Config{Host: "127.0.0.1", Port: -1})
	if err != nil {
		t.Fatalf("broker.New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Start(ctx); err != nil {
		t.Fatalf("broker.Start: %v", err)
	}
	t.Cleanup(b.Shutdown)
	return b
}
