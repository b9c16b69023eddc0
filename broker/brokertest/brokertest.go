// Package brokertest starts real brokers for tests, as net/http/httptest
// starts real servers: a test package imports it, the binary never does.
package brokertest

import (
	"context"
	"testing"
	"time"

	"github.com/bilancia/bilancia/broker"
)

// Run starts a broker on a random loopback port for a test and
// shuts it down at cleanup, so that tests in other packages run against a
// real nats-server without fixed ports.
func Run(t testing.TB) *broker.Broker {
	t.Helper()
	return Start(t, broker.Config{Host: "127.0.0.1", Port: -1})
}

// Start starts a broker configured by cfg for a test and shuts it down at
// cleanup; a test that must see it stop sooner may call Shutdown itself,
// which is safe to call again.
func Start(t testing.TB, cfg broker.Config) *broker.Broker {
	t.Helper()
	b, err := broker.New(cfg)
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
