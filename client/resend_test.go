package client_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/internal/testutil"
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
	// The seventh send is answered; on a loaded machine its answer may
	// come after an eighth send went out.
	if r.Sends < 7 {
		t.Fatalf("sends %d; want 7 or more", r.Sends)
	}
	testutil.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		if got := n.Load(); got != int64(r.Sends) {
			return fmt.Errorf("received %d; want the %d sent", got, r.Sends)
		}
		return nil
	})
}

// TestHeardRequestResendsSpaceOut: once a dispatcher said it holds the
// request (a progress message), MaxAttempts-1 resends in a row with no
// word go after each silence, and the next ones further and further
// apart: the request is not given up (the dispatcher may have died with
// it), but far fewer go than for a request never heard of.
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
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := c.Do(ctx, "add 2 3"); err == nil {
		t.Fatal("Do succeeded; want a 504")
	}
	// A silence is 10ms: a request never heard of would go about 100
	// times in the second; this one 4 times in the first 40ms, then
	// after 20, 40, 80, 160ms, and every 160ms.
	if got := n.Load(); got <= 4 || got >= 20 {
		t.Fatalf("sent %d times; want more than MaxAttempts (4), spaced out (fewer than 20)", got)
	}
}
