package natsutil

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

func TestRetryBudget(t *testing.T) {
	b := RetryBudget{Ratio: 0.2, Min: 10}
	for _, tc := range []struct {
		name               string
		inflight, retrying int64
		want               bool
	}{
		{"below the minimum", 5, 9, true},
		{"at the minimum", 5, 10, false},
		{"the ratio above the minimum", 100, 19, true},
		{"at the ratio", 100, 20, false},
		{"idle", 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := b.Allows(tc.inflight, tc.retrying); got != tc.want {
				t.Errorf("Allows(%d, %d) = %v; want %v", tc.inflight, tc.retrying, got, tc.want)
			}
		})
	}
	if (RetryBudget{}).Allows(100, 0) {
		t.Errorf("the zero budget allows a retry; want none")
	}
}

func runServer(t *testing.T) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(s.Shutdown)
	return s
}

// TestIsNoResponders checks the status message the broker really sends,
// and that a reply with an empty body is not taken for it.
func TestIsNoResponders(t *testing.T) {
	s := runServer(t)
	nc, err := nats.Connect(s.ClientURL(), Options("test", nil)...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	replies := make(chan *nats.Msg, 2)
	sub, err := nc.ChanSubscribe("replies.>", replies)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	echo, err := nc.Subscribe("empty", func(m *nats.Msg) { _ = m.Respond(nil) })
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Unsubscribe()
	for _, tc := range []struct {
		subject string
		want    bool
	}{
		{"nobody", true},
		{"empty", false},
	} {
		if err := nc.PublishMsg(&nats.Msg{Subject: tc.subject, Reply: "replies." + tc.subject}); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-replies:
			if got := IsNoResponders(m); got != tc.want {
				t.Errorf("IsNoResponders(reply from %s) = %v; want %v (header %v)", tc.subject, got, tc.want, m.Header)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no reply from %s", tc.subject)
		}
	}
}

// TestDrain: messages already sent reach the handler before Drain returns;
// on a closed connection it returns at once.
func TestDrain(t *testing.T) {
	s := runServer(t)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var got int
	sub, err := nc.Subscribe("work", func(*nats.Msg) { got++ })
	if err != nil {
		t.Fatal(err)
	}
	pub, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	for range 100 {
		_ = pub.Publish("work", nil)
	}
	if err := pub.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil { // the 100 have reached nc
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	Drain(ctx, sub, nc)
	if got != 100 || sub.IsValid() {
		t.Errorf("after Drain: %d messages handled, subscription valid %v; want 100 and false", got, sub.IsValid())
	}

	sub2, err := nc.Subscribe("work", func(*nats.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	done := make(chan struct{})
	go func() { Drain(context.Background(), sub2, nc); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Drain on a closed connection did not return")
	}
}
