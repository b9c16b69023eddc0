package calcworker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/calcworker"
	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

// TestLongReplyIsHandedOver: the reply to a long job whose reply
// subject nobody listens on any more (its dispatcher died) is handed
// over on calc.orphan.<its id>, whole, with the client's reply subject
// its forward named, and so is one received but never
// acknowledged; a long job's reply acknowledged, and a short job's, are
// not. The worker's messages keep their order, so each
// negative case is settled by the next long job's hand-over.
func TestLongReplyIsHandedOver(t *testing.T) {
	// The test acknowledges by hand: a wait long enough for any stall.
	calcworker.SetAckWait(t, 2*time.Second)
	url := brokertest.Run(t).ClientURL()
	w := start(t, url, calcworker.Config{ID: "w-o", Progress: 20 * time.Millisecond})
	nc := connect(t, url)
	orphans, err := nc.SubscribeSync(wire.Subjects{}.HandOver("w-o"))
	if err != nil {
		t.Fatal(err)
	}
	alive := nats.NewInbox()
	replies, err := nc.SubscribeSync(alive)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	send := func(id, cmd, reply string) {
		t.Helper()
		m := nats.NewMsg(w.Subject())
		m.Reply = reply
		m.Header.Set(wire.HdrRequestID, id)
		m.Header.Set(wire.HdrProgress, "1")
		m.Header.Set(wire.HdrClientReply, "_INBOX.client."+id)
		m.Data = []byte(cmd)
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	nextOrphan := func(want string) {
		t.Helper()
		m, err := orphans.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("no reply handed over (want %s): %v", want, err)
		}
		if id := m.Header.Get(wire.HdrRequestID); id != want {
			t.Fatalf("handed over %q (%s); want %s", id, m.Data, want)
		}
		if m.Header.Get(wire.HdrWorker) != "w-o" || len(m.Data) == 0 || m.Header.Get(wire.HdrProgress) != "" ||
			m.Header.Get(wire.HdrClientReply) != "_INBOX.client."+want {
			t.Fatalf("handed over %v %q; want w-o's whole reply", m.Header, m.Data)
		}
	}

	send("dead-long", "sleep 60", "_INBOX.gone.w-o")
	nextOrphan("dead-long")

	// reply receives a reply on the live inbox, acknowledging it or not.
	reply := func(id string, ack bool) {
		t.Helper()
		for {
			m, err := replies.NextMsg(5 * time.Second)
			if err != nil {
				t.Fatalf("no reply to %s: %v", id, err)
			}
			if len(m.Data) == 0 {
				continue // progress messages before it
			}
			if got := m.Header.Get(wire.HdrRequestID); got != id || m.Reply == "" {
				t.Fatalf("reply to %q with reply subject %q; want %s's, with one to acknowledge it on", got, m.Reply, id)
			}
			if ack {
				if err := nc.Publish(m.Reply, nil); err != nil {
					t.Fatal(err)
				}
			}
			return
		}
	}
	send("alive-long", "sleep 60", alive)
	reply("alive-long", true)
	send("dead-short", "add 1 2", "_INBOX.gone.w-o")
	send("dead-long-2", "sleep 60", "_INBOX.gone.w-o")
	nextOrphan("dead-long-2") // and neither alive-long nor dead-short before it

	// Received but not acknowledged (its dispatcher died before reading
	// it): handed over after the wait.
	send("unread-long", "sleep 60", alive)
	reply("unread-long", false)
	nextOrphan("unread-long")

	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if st := w.Stats(); st.HandedOver != 3 {
			return fmt.Errorf("handed over %d; want 3", st.HandedOver)
		}
		return nil
	})
}
