package broker_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker"
	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

// waitDial connects with file once the broker has read it.
func waitDial(t testing.TB, url, file string) *conn {
	t.Helper()
	var c *conn
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		var err error
		c, err = tryDialAs(url, file)
		return err
	})
	t.Cleanup(c.Close)
	return c
}

// TestAuthWorkerIdentity: a worker's own credential acts only for its
// ids. Answers, heartbeats (draining ones too), hand-overs and claims for
// another id are refused at the broker, and never reach a dispatcher;
// its own pass, and so do its answers to the messages it received.
func TestAuthWorkerIdentity(t *testing.T) {
	b, dir := startAuth(t, broker.Config{AuthWorkers: []string{"w1", "w2"}})
	url := b.ClientURL()
	pool, err := broker.AddWorker(dir, "p", 2)
	if err != nil {
		t.Fatal(err)
	}
	w1File := filepath.Join(dir, broker.WorkersDir, "w1.nk")
	disp := dialAs(t, url, filepath.Join(dir, broker.DispatcherCredential))
	seen := disp.subscribe(t, "calc.>") // what reaches the dispatchers
	disp.allowed(t)
	waitDial(t, url, pool)

	draining, _ := json.Marshal(wire.Heartbeat{ID: "w2", Subject: "calc.worker.w2", State: wire.StateDraining, Seq: 1, StartedAt: time.Now()})
	for _, tc := range []struct{ file, subj string }{
		{w1File, "calc.heartbeat.w2"},  // a forged draining heartbeat
		{w1File, "calc.heartbeat.p-0"}, // a pool's id
		{w1File, "_INBOX.d1.w2"},       // an answer to a forward to w2
		{w1File, "calc.orphan.w2"},     // a hand-over for w2
		{w1File, "calc.orphan"},        // a hand-over naming no worker
		{w1File, "calc.claim.w2"},      // a probe of another id
		{w1File, "_INBOX_WORKER.w2.x"}, // into w2's inbox
		{w1File, "_INBOX_CLIENT.default.x"},
		{w1File, "calc.request"},
		{pool, "calc.heartbeat.p"},   // the pool's name is no id of it
		{pool, "calc.heartbeat.p-2"}, // beyond its replicas
		{pool, "calc.heartbeat.w1"},
	} {
		c := dialAs(t, url, tc.file)
		if err := c.Publish(tc.subj, draining); err != nil {
			t.Fatal(err)
		}
		c.denied(t, tc.subj)
		// The message after it on the same connection arrives alone.
		own := "calc.heartbeat.w1"
		if tc.file == pool {
			own = "calc.heartbeat.p-1"
		}
		if err := c.Publish(own, nil); err != nil {
			t.Fatal(err)
		}
		if m := next(t, seen); m.Subject != own {
			t.Fatalf("after %s, the dispatcher received %s; want only %s", tc.subj, m.Subject, own)
		}
	}
	for _, subj := range []string{"calc.worker.w2", "calc.worker.*", "calc.worker.>", "calc.claim.w2", "calc.claim.>", "calc.claim.*.*",
		"calc.heartbeat.*", "calc.orphan.*", "_INBOX.>", "_INBOX.*.w2", "_INBOX_WORKER.w2.>", "_INBOX_WORKER.>", "_INBOX_CLIENT.>"} {
		c := dialAs(t, url, w1File)
		c.subscribe(t, subj)
		c.denied(t, subj)
	}

	w1 := dialAs(t, url, w1File)
	for _, subj := range []string{"calc.worker.w1", "calc.claim.w1", "calc.discover", "_INBOX_WORKER.w1.>"} {
		w1.subscribe(t, subj)
	}
	for _, subj := range []string{"calc.heartbeat.w1", "_INBOX.d1.w1", "calc.orphan.w1", "calc.claim.w1", "_INBOX_WORKER.w1.x"} {
		if err := w1.Publish(subj, nil); err != nil {
			t.Fatal(err)
		}
	}
	w1.allowed(t)

	// allow_responses: a reply subject outside its permissions (a
	// dispatcher's second forward of one request id, an operator's micro
	// request) is open to it once delivered, for progress and the reply,
	// and no other.
	in := make(chan *nats.Msg, 4)
	if _, err := w1.ChanSubscribe("calc.worker.w1", in); err != nil {
		t.Fatal(err)
	}
	w1.allowed(t) // subscribed before the dispatcher sends
	replies := disp.subscribe(t, "_INBOX.d1.t.*")
	if err := disp.PublishRequest("calc.worker.w1", "_INBOX.d1.t.1", []byte("add 2 3")); err != nil {
		t.Fatal(err)
	}
	var m *nats.Msg
	for m = next(t, in); m.Reply != "_INBOX.d1.t.1"; m = next(t, in) {
	}
	for _, data := range []string{"", "5"} { // a progress message, then the reply
		if err := m.Respond([]byte(data)); err != nil {
			t.Fatal(err)
		}
		if r := next(t, replies); string(r.Data) != data {
			t.Fatalf("reply %q; want %q", r.Data, data)
		}
	}
	w1.allowed(t)
	if err := w1.Publish("_INBOX.d1.t.2", nil); err != nil {
		t.Fatal(err)
	}
	w1.denied(t, "_INBOX.d1.t.2")
}

// TestAuthWorkerRemoved: a worker credential removed from the directory
// closes its connections, as a client's does.
func TestAuthWorkerRemoved(t *testing.T) {
	b, dir := startAuth(t, broker.Config{AuthWorkers: []string{"w1"}})
	path := filepath.Join(dir, broker.WorkersDir, "w1.nk")
	w1 := dialAs(t, b.ClientURL(), path)
	kept := filepath.Join(t.TempDir(), "w1.nk")
	if data, err := os.ReadFile(path); err != nil || os.WriteFile(kept, data, 0o600) != nil {
		t.Fatalf("copy %s: %v", path, err)
	}
	if err := broker.RemoveWorker(dir, "w1"); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if !w1.IsClosed() {
			return errors.New("w1's connection still open")
		}
		return nil
	})
	if _, err := tryDialAs(b.ClientURL(), kept); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("connect with a removed credential: %v; want %v", err, nats.ErrAuthorization)
	}
}

// TestAuthNoConfusedDeputy: whatever reply subject a client's request
// names, a dispatcher's credential cannot publish there unless it is an
// inbox or a subject of the dispatcher's own: a relay answering every
// request on its reply subject, as a dispatcher did, registers no worker,
// hands nothing over, claims nothing, sends no request or hello.
func TestAuthNoConfusedDeputy(t *testing.T) {
	b, dir := startAuth(t, broker.Config{})
	url := b.ClientURL()
	relay := dialAs(t, url, filepath.Join(dir, broker.DispatcherCredential))
	if _, err := relay.Subscribe("calc.request", func(m *nats.Msg) {
		_ = m.Respond([]byte(`{"id":"fake","subject":"calc.worker.fake","state":"up"}`))
	}); err != nil {
		t.Fatal(err)
	}
	watch := dialAs(t, url, filepath.Join(dir, broker.AdminCredential))
	seen := watch.subscribe(t, ">")
	watch.allowed(t)
	relay.allowed(t)
	client := dialAs(t, url, filepath.Join(dir, broker.ClientCredential))
	forged := []string{"calc.heartbeat.fake", "calc.orphan", "calc.orphan.fake", "calc.orphan.tok.1", "calc.claim.fake",
		"calc.claim.fake.tok", "calc.request", "calc.client.connect", "calc.direct", "$SYS.REQ.SERVER.PING", "$JS.API.INFO"}
	for _, reply := range forged {
		if err := client.PublishRequest("calc.request", reply, nil); err != nil {
			t.Fatal(err)
		}
		relay.denied(t, reply)
	}
	// Only the requests reached the bus, never a reply: up to a marker
	// the relay sends after them all.
	if err := relay.Publish("calc.status", nil); err != nil {
		t.Fatal(err)
	}
	for m := next(t, seen); m.Subject != "calc.status"; m = next(t, seen) {
		if m.Subject != "calc.request" {
			t.Fatalf("the relay published on %s", m.Subject)
		}
	}
	client.allowed(t)
	// Its own subjects, and the inboxes, it may.
	relay = dialAs(t, url, filepath.Join(dir, broker.DispatcherCredential))
	for _, subj := range []string{"calc.worker.w1", "calc.discover", "calc.events.worker.w1.up", "calc.ctl.list", "calc.status",
		"_INBOX.x.y", "_INBOX_CLIENT.default.x", "_INBOX_WORKER.w1.x", "$SRV.PING"} {
		if err := relay.Publish(subj, nil); err != nil {
			t.Fatal(err)
		}
	}
	relay.allowed(t)
}
