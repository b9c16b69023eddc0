package broker_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker"
	"github.com/bilancia/bilancia/broker/brokertest"
)

// TestLameDuck: in lame duck mode the broker tells its clients, turns
// new ones away, closes the connected ones after the grace and shuts
// down within the duration.
func TestLameDuck(t *testing.T) {
	const duration, grace = time.Second, 200 * time.Millisecond
	b := brokertest.Start(t, broker.Config{Port: -1, LameDuckDuration: duration, LameDuckGrace: grace})
	if got := b.LameDuckGrace(); got != grace {
		t.Errorf("LameDuckGrace = %v; want %v", got, grace)
	}
	told, closed := make(chan struct{}, 1), make(chan struct{})
	nc, err := nats.Connect(b.ClientURL(), nats.NoReconnect(),
		nats.LameDuckModeHandler(func(*nats.Conn) { told <- struct{}{} }),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	start := time.Now()
	b.LameDuck()
	b.LameDuck() // again: nothing more
	select {
	case <-told:
	case <-time.After(5 * time.Second):
		t.Fatal("the client was not told of the lame duck mode")
	}
	if c, err := nats.Connect(b.ClientURL(), nats.NoReconnect(), nats.Timeout(time.Second)); err == nil {
		c.Close()
		t.Error("a new client connected in lame duck mode")
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the client is still connected after the lame duck duration")
	}
	if d := time.Since(start); d < grace {
		t.Errorf("the client was closed after %v, within the grace of %v", d, grace)
	}
	done := make(chan struct{})
	go func() { b.WaitForShutdown(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the broker did not shut down after the lame duck mode")
	}
	b.LameDuck() // after the end: nothing
}

// TestLameDuckShutdown: Shutdown ends a lame duck mode at once, without
// waiting for its grace.
func TestLameDuckShutdown(t *testing.T) {
	b := brokertest.Start(t, broker.Config{Port: -1, LameDuckDuration: time.Hour, LameDuckGrace: time.Minute})
	nc, err := nats.Connect(b.ClientURL(), nats.NoReconnect())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	b.LameDuck()
	done := make(chan struct{})
	go func() { b.Shutdown(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown waited for the lame duck mode")
	}
}

// TestLameDuckInvalid: a grace not shorter than the duration, or a
// negative one, is refused by New.
func TestLameDuckInvalid(t *testing.T) {
	for _, cfg := range []broker.Config{
		{Port: -1, LameDuckDuration: time.Second, LameDuckGrace: time.Second},
		{Port: -1, LameDuckGrace: -time.Second},
	} {
		if _, err := broker.New(cfg); !errors.Is(err, broker.ErrInvalidConfig) {
			t.Errorf("New(duration %v, grace %v) = %v; want %v", cfg.LameDuckDuration, cfg.LameDuckGrace, err, broker.ErrInvalidConfig)
		}
	}
}
