package client_test

import (
	"context"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker"
	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/client"
)

// TestReconnectSendsAgainAtOnce: a request in flight when the client's
// broker goes (taking the dispatcher that held it, as a broker with its
// dispatcher inside does) is sent again as soon as the connection is
// back, not after the client's silence, here a minute.
func TestReconnectSendsAgainAtOnce(t *testing.T) {
	b := brokertest.Run(t)
	addr := b.ClientURL()
	u, err := url.Parse(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	nc, err := nats.Connect(addr, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	held := make(chan struct{})
	n := responder(t, nc, func(m *nats.Msg, n int64) *nats.Msg {
		if n == 1 {
			close(held)
			return nil // held by a dispatcher about to go with its broker
		}
		return ok(m)
	})
	c := newClient(t, addr, client.Config{ProgressSilence: time.Minute, Timeout: time.Minute})
	res := make(chan error, 1)
	var r *client.Result
	go func() {
		var err error
		r, err = c.Do(context.Background(), "add 2 3")
		res <- err
	}()
	<-held
	b.Shutdown()
	brokertest.Start(t, broker.Config{Host: "127.0.0.1", Port: port})
	select {
	case err := <-res:
		if err != nil {
			t.Fatalf("Do = %v; want the resend answered", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no reply 20s after the broker came back; want the request sent again at once")
	}
	if r.Sends < 2 || n.Load() < 2 {
		t.Fatalf("sends %d, received %d; want the request sent again", r.Sends, n.Load())
	}
}
