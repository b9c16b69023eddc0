package client_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/wire"
)

// TestDefaultDeadlineFollowsTheOp: without a Timeout, a request's deadline
// is the default beyond the time its op asks for, so that sleep 30000
// (the longest a stock worker accepts) can finish; a set Timeout stands.
func TestDefaultDeadlineFollowsTheOp(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	var mu sync.Mutex
	var sent string
	responder(t, connect(t, url), func(m *nats.Msg, _ int64) *nats.Msg {
		mu.Lock()
		sent = m.Header.Get(wire.HdrTimeout)
		mu.Unlock()
		return ok(m)
	})
	timeoutOf := func(c *client.Client, cmd string) time.Duration {
		t.Helper()
		if _, err := c.Do(context.Background(), cmd); err != nil {
			t.Fatalf("Do(%q) = %v", cmd, err)
		}
		mu.Lock()
		defer mu.Unlock()
		ms, err := strconv.Atoi(sent)
		if err != nil {
			t.Fatalf("%s = %q; want milliseconds", wire.HdrTimeout, sent)
		}
		return time.Duration(ms) * time.Millisecond
	}
	def := newClient(t, url, client.Config{})
	if got := timeoutOf(def, "add 2 3"); got > client.DefaultTimeout || got < client.DefaultTimeout-5*time.Second {
		t.Errorf("add's deadline = %v; want about %v", got, client.DefaultTimeout)
	}
	if got, least := timeoutOf(def, "sleep 30000"), 30*time.Second+client.DefaultTimeout/2; got < least {
		t.Errorf("sleep 30000's deadline = %v; want at least %v", got, least)
	}
	if got := timeoutOf(def, `{"op":"spin","args":[20000]}`); got < 20*time.Second {
		t.Errorf("spin 20000's deadline = %v; want above 20s", got)
	}
	set := newClient(t, url, client.Config{Timeout: 3 * time.Second})
	if got := timeoutOf(set, "sleep 30000"); got > 3*time.Second {
		t.Errorf("sleep 30000's deadline with Timeout 3s = %v; want at most 3s", got)
	}
}

// TestClientDeadlineSaysHowToRaiseIt: the client's own 504 names its
// deadline and the flag that raises it.
func TestClientDeadlineSaysHowToRaiseIt(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	responder(t, connect(t, url), func(*nats.Msg, int64) *nats.Msg { return nil })
	c := newClient(t, url, client.Config{Timeout: 100 * time.Millisecond, MaxAttempts: 1})
	_, err := c.Do(context.Background(), "add 1 1")
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeDeadline || !strings.Contains(we.Message, "client's deadline of 100ms") ||
		!strings.Contains(we.Message, "--timeout") {
		t.Fatalf("Do = %v; want a 504 naming the client's deadline and --timeout", err)
	}
}

// TestNoDispatcherFailsFast: with no dispatcher ever heard, a request
// fails with 503 long before its deadline; once one has answered, a
// request keeps trying while it is away (a restart) and gets the reply.
func TestNoDispatcherFailsFast(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	c := newClient(t, url, client.Config{Timeout: time.Minute, NoDispatcherWait: 20 * time.Millisecond})
	done := make(chan error, 1)
	go func() { _, err := c.Do(context.Background(), "add 2 3"); done <- err }()
	select {
	case err := <-done:
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != wire.CodeUnavailable || !strings.Contains(we.Message, "no dispatcher is listening") {
			t.Fatalf("Do with no dispatcher = %v; want 503 no dispatcher is listening", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Do with no dispatcher waited for its deadline; want 503 at once")
	}

	// A dispatcher answers once, then restarts: the request waits for it.
	nc := connect(t, url)
	sub, err := nc.QueueSubscribe("calc.request", wire.DispatcherQueue, func(m *nats.Msg) {
		out := ok(m)
		out.Subject = m.Reply
		_ = nc.PublishMsg(out)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Do(context.Background(), "add 2 3"); err != nil {
		t.Fatalf("Do with a dispatcher: %v", err)
	}
	if err := sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	go func() { _, err := c.Do(context.Background(), "add 2 3"); done <- err }()
	// Well past NoDispatcherWait, the dispatcher comes back.
	select {
	case err := <-done:
		t.Fatalf("Do while the dispatcher restarts = %v; want it to wait", err)
	case <-time.After(200 * time.Millisecond):
	}
	responder(t, nc, func(m *nats.Msg, _ int64) *nats.Msg { return ok(m) })
	if err := <-done; err != nil {
		t.Fatalf("Do once the dispatcher is back: %v", err)
	}
}
