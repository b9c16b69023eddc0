package dispatcher_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/dispatcher"
	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

// deputySubjects are the subjects an attacker names as a reply subject so
// that a role publishes there in its own name: a heartbeat, a hand-over, a
// forward, discovery, an event.
var deputySubjects = []string{
	"calc.heartbeat.fake", "calc.orphan", "calc.orphan.w-real", "calc.worker.w-ghost",
	"calc.discover", "calc.events.worker", "calc.request", "$SRV.PING", "$SYS.REQ.SERVER.PING",
}

// TestAttackConfusedDeputy: requests, status, control and micro requests
// whose reply subject is a Bilancia or $ subject, and whose request id is
// the id a forged heartbeat would carry, get no publish at all from the
// dispatcher or the worker: no fake worker is registered, nothing reaches
// those subjects, and each refusal is counted; the real client is served.
func TestAttackConfusedDeputy(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	var log testutil.SyncBuffer
	d := startDispatcher(t, url, func(c *dispatcher.Config) { c.Logger = jsonLog(&log) })
	w := startWorker(t, url, "w-real", nil)
	waitState(t, d, up("w-real"))

	spy := connect(t, url)
	var reached atomic.Int64
	var first atomic.Value
	for _, s := range deputySubjects {
		if _, err := spy.Subscribe(s, func(m *nats.Msg) {
			// Neither the attacker's own publish nor the real client's request.
			if m.Header.Get("evil") == "" && m.Header.Get(wire.HdrClient) == "" {
				first.CompareAndSwap(nil, m.Subject)
				reached.Add(1)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}

	evil := connect(t, url)
	s := wire.Subjects{}
	send := func(subject, reply string, data []byte) {
		t.Helper()
		m := nats.NewMsg(subject)
		m.Reply = reply
		m.Header.Set(wire.HdrRequestID, "fake")
		m.Header.Set("evil", "1")
		m.Data = data
		if err := evil.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	toDispatcher := 0
	for _, reply := range deputySubjects {
		send(s.Request(), reply, []byte("add 1 2"))
		send(s.Status(), reply, nil)
		send(s.Ctl(wire.CtlList), reply, nil)
		send("$SRV.INFO."+dispatcher.ServiceName, reply, nil)
		toDispatcher += 4
		send(s.Worker("w-real"), reply, []byte("add 1 2"))
		send(s.Claim("w-real"), reply, nil)
	}
	if err := evil.Flush(); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if got := d.RefusedReplies(); got < uint64(toDispatcher) {
			return fmt.Errorf("dispatcher refused %d; want %d", got, toDispatcher)
		}
		if got := w.Stats().RefusedReplies; got < uint64(2*len(deputySubjects)) {
			return fmt.Errorf("worker refused %d; want %d", got, 2*len(deputySubjects))
		}
		return nil
	})
	// A real client's request, answered after the attacker's: what they
	// would have caused has happened by then.
	cl := newClient(t, url, nil)
	for i := range 5 {
		if _, err := cl.Do(t.Context(), fmt.Sprintf("add %d 1", i)); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := reached.Load(); n != 0 {
		t.Fatalf("%d messages published on a deputy subject, the first on %v; want 0", n, first.Load())
	}
	for _, ws := range d.Status().Workers {
		if ws.ID != "w-real" {
			t.Fatalf("worker %q registered; want w-real alone", ws.ID)
		}
	}
	if served := w.Stats().Served; served != 5 {
		t.Fatalf("worker served %d; want the client's 5 alone", served)
	}
	if n := len(logLines(t, &log, "reply subject refused: not an inbox")); n == 0 || n > 4*2 {
		t.Fatalf("%d refusal lines; want one or two per responder", n)
	}
}
