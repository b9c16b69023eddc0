package dispatcher_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/internal/metrics/metricstest"
	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

// TestAttackForgedHandOver: hand-overs forged for a request id the forger
// knows answer no request: not one on the old subject, not one whose
// Calc-Worker is not the worker of its subject, not one for another
// client's reply subject. Each request is answered by the real worker.
func TestAttackForgedHandOver(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, nil)
	startWorker(t, url, "w-a", nil)
	waitState(t, d, up("w-a"))

	evil := connect(t, url)
	forge := func(subject, id, worker, client string) {
		t.Helper()
		m := nats.NewMsg(subject)
		m.Header.Set(wire.HdrRequestID, id)
		m.Header.Set(wire.HdrWorker, worker)
		m.Header.Set(wire.HdrClientReply, client)
		m.Data = []byte(`{"id":"` + id + `","result":666,"worker":"` + worker + `"}`)
		if err := evil.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	victim := connect(t, url)
	inbox := nats.NewInbox()
	s := wire.Subjects{}
	cases := []struct{ name, id, subject, worker, client string }{
		{"on the old subject", "id-old", s.Orphan(), "w-evil", inbox + ".1"},
		{"naming another worker", "id-other", s.HandOver("w-evil"), "w-a", inbox + ".2"},
		{"for another client", "id-client", s.HandOver("w-evil"), "w-evil", "_INBOX.someone.3"},
		{"for no client", "id-none", s.HandOver("w-evil"), "w-evil", ""},
	}
	for _, c := range cases {
		forge(c.subject, c.id, c.worker, c.client)
	}
	// A hand-over as a worker sends it, last: it is kept, and answers
	// its client's resend.
	forge(s.HandOver("w-evil"), "id-good", "w-evil", inbox+".9")
	if err := evil.Flush(); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		f, err := metricstest.Gather(d.Registry())
		if err != nil {
			return err
		}
		kept, _ := f.Value("bilancia_dispatcher_orphan_replies_total", "outcome", "kept")
		refused, _ := f.Value("bilancia_dispatcher_orphan_replies_total", "outcome", "refused")
		if kept != 2 || refused != 2 {
			return fmt.Errorf("%v kept, %v refused; want 2 (another client's, the good one) and 2", kept, refused)
		}
		return nil
	})
	for i, c := range cases {
		m := nats.NewMsg(s.Request())
		m.Reply = fmt.Sprintf("%s.%d", inbox, i+1)
		if c.name == "for another client" {
			m.Reply = inbox + ".3" // the victim's own, not the forged one
		}
		m.Header.Set(wire.HdrRequestID, c.id)
		m.Data = []byte("add 2 3")
		sub, err := victim.SubscribeSync(m.Reply)
		if err != nil {
			t.Fatal(err)
		}
		if err := victim.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
		r, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("%s: no reply: %v", c.name, err)
		}
		var rep wire.Reply
		if err := json.Unmarshal(r.Data, &rep); err != nil || string(rep.Result) != "5" || rep.Worker != "w-a" {
			t.Fatalf("%s: reply %s; want 5 from w-a", c.name, r.Data)
		}
		_ = sub.Unsubscribe()
	}
	if f := forwarded(d, "w-a"); f != uint64(len(cases)) {
		t.Fatalf("forwarded %d to w-a; want each request", f)
	}
	// The good one answers its client, from what was kept, unforwarded.
	sub, err := victim.SubscribeSync(inbox + ".9")
	if err != nil {
		t.Fatal(err)
	}
	if err := victim.PublishMsg(&nats.Msg{Subject: s.Request(), Reply: inbox + ".9",
		Header: nats.Header{wire.HdrRequestID: {"id-good"}}, Data: []byte("add 2 3")}); err != nil {
		t.Fatal(err)
	}
	r, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(r.Data), "666") || r.Header.Get(wire.HdrAttempts) != "0" || r.Header.Get(wire.HdrClientReply) != "" {
		t.Fatalf("the resend of the hand-over's own client got %v %s; want the hand-over, 0 attempts, no Calc-Client-Reply", r.Header, r.Data)
	}
}
