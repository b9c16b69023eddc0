package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/wire"
)

// TestUnheardRequestIsResentUntilAnswered: sends that vanish without a
// word (a route cut off) do not use up MaxAttempts: the seventh send of
// a request is answered, past the four that MaxAttempts allows.
func TestUnheardRequestIsResentUntilAnswered(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	n := responder(t, connect(t, url), func(m *nats.Msg, n int64) *nats.Msg {
		if n < 7 {
			return nil // swallowed
		}
		return ok(m)
	})
	c := newClient(t, url, client.Config{ProgressSilence: 10 * time.Millisecond, Timeout: 5 * time.Second})
	r, err := c.Do(context.Background(), "add 2 3")
	if err != nil {
		t.Fatalf("Do = %v; want the seventh send answered", err)
	}
	if r.Sends != 7 || n.Load() != 7 {
		t.Fatalf("sends %d, received %d; want 7, 7", r.Sends, n.Load())
	}
}

// TestHeardRequestResendsSpaceOut: once a dispatcher said it holds the
// request (a progress message) and fell silent, MaxAttempts-1 resends go
// after each silence and the next ones further and further apart: the
// request is not given up (that dispatcher may have died with it), nor
// sent after every silence.
func TestHeardRequestResendsSpaceOut(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	nc := connect(t, url)
	n := responder(t, nc, func(m *nats.Msg, n int64) *nats.Msg {
		if n > 1 {
			return nil
		}
		p := nats.NewMsg("")
		p.Header.Set(wire.HdrProgress, "1")
		p.Header.Set(wire.HdrRequestID, m.Header.Get(wire.HdrRequestID))
		return p // held, then silent
	})
	c := newClient(t, url, client.Config{ProgressSilence: 10 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	if _, err := c.Do(ctx, "add 2 3"); err == nil {
		t.Fatal("Do succeeded; want a 504")
	}
	// 400 ms hold 40 silences: one send after each would be 41.
	if got := n.Load(); got <= 4 || got >= 20 {
		t.Fatalf("sent %d times; want more than MaxAttempts (4), far fewer than one a silence", got)
	}
}
