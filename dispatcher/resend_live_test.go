package dispatcher_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/calcworker"
	"github.com/bilancia/bilancia/dispatcher"
	"github.com/bilancia/bilancia/wire"
)

// TestResendIsNotForwardedAgain: a client resending a request its
// dispatcher still holds (as the library does after a silence) gets a
// progress message at once, and one reply; the worker gets it once.
func TestResendIsNotForwardedAgain(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, func(c *dispatcher.Config) {
		c.ProgressInterval = time.Minute // only the resend's progress message
	})
	startWorker(t, url, "w-slow", func(c *calcworker.Config) { c.Env.Delay = 500 * time.Millisecond })
	waitState(t, d, up("w-slow"))
	nc := connect(t, url)
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	send := func() {
		m := nats.NewMsg(wire.Subjects{}.Request())
		m.Reply = inbox
		m.Header.Set(wire.HdrRequestID, "resent-id")
		m.Header.Set(wire.HdrProgress, "1")
		m.Data = []byte("add 2 3")
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	send()
	send()
	first, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if first.Header.Get(wire.HdrProgress) == "" || len(first.Data) != 0 {
		t.Fatalf("first message %q %v; want the resend's progress message", first.Data, first.Header)
	}
	reply, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if reply.Header.Get(wire.HdrProgress) != "" || len(reply.Data) == 0 {
		t.Fatalf("second message %q %v; want the reply", reply.Data, reply.Header)
	}
	if n := forwarded(d, "w-slow"); n != 1 {
		t.Fatalf("forwarded to the worker %d times; want 1", n)
	}
}
