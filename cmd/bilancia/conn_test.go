package main

import (
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/bilancia/bilancia/broker"
	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/internal/testutil"
)

// startBroker starts a broker on port; the caller shuts it down.
func startBroker(t *testing.T, port int) *broker.Broker {
	t.Helper()
	return brokertest.Start(t, broker.Config{Host: "127.0.0.1", Port: port})
}

// TestConnectWaitsForALateBroker: with --connect-wait a role started
// before its broker connects once the broker comes up, and then outlives
// a restart of the broker.
func TestConnectWaitsForALateBroker(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	// Hold a free port with a listener that hangs up on every connection,
	// so that the test sees the role try before the broker is there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	var tries atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tries.Add(1)
			c.Close()
		}
	}()

	f := NATSFlags{NATS: fmt.Sprintf("nats://127.0.0.1:%d", port), ConnectWait: 20 * time.Second}
	type result struct {
		nc  *nats.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		nc, err := f.connect("test-role", nil)
		done <- result{nc, err}
	}()
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if n := tries.Load(); n < 2 {
			return fmt.Errorf("%d connection attempts; want 2", n)
		}
		return nil
	})
	ln.Close()
	b := startBroker(t, port)
	defer b.Shutdown()
	var r result
	select {
	case r = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("connect did not return after the broker came up")
	}
	if r.err != nil {
		t.Fatalf("connect = %v; want a connection to the late broker", r.err)
	}
	defer r.nc.Close()

	b.Shutdown()
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if r.nc.IsConnected() {
			return errors.New("still connected to the stopped broker")
		}
		return nil
	})
	b = startBroker(t, port)
	defer b.Shutdown()
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if !r.nc.IsConnected() {
			return fmt.Errorf("not reconnected to the restarted broker (status %v)", r.nc.Status())
		}
		return nil
	})
}

// TestConnectNoServer: with nobody listening, connect says so in one plain
// sentence: at once without --connect-wait, after it with one, leaving no
// connection retrying behind.
func TestConnectNoServer(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "nats://" + ln.Addr().String()
	ln.Close() // a free port, refusing connections
	for _, wait := range []time.Duration{0, 300 * time.Millisecond} {
		t.Run(fmt.Sprint("wait ", wait), func(t *testing.T) {
			f := NATSFlags{NATS: url, ConnectWait: wait}
			start := time.Now()
			nc, err := f.connect("test-role", nil)
			took := time.Since(start)
			if err == nil {
				nc.Close()
				t.Fatalf("connect to %s succeeded; want an error", url)
			}
			if want := "no NATS server answered at " + url; err.Error() != want || !errors.Is(err, errNoServer) {
				t.Errorf("connect = %q; want %q", err, want)
			}
			if took < wait || took > wait+5*time.Second {
				t.Errorf("connect gave up after %v; want about %v", took, wait)
			}
		})
	}
}
