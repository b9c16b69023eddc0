package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

// credConn is a connection with one credential of broker --auth's
// directory, with the permission errors the broker sent it.
type credConn struct {
	*nats.Conn
	mu   sync.Mutex
	errs []error
}

func dialCred(t *testing.T, url, seed, inboxPrefix string) *credConn {
	t.Helper()
	c := &credConn{}
	nkey, err := nats.NkeyOptionFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, nkey, nats.CustomInboxPrefix(inboxPrefix), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		c.mu.Lock()
		c.errs = append(c.errs, err)
		c.mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	c.Conn = nc
	return c
}

// refused waits for the broker's permissions violation naming subj.
func (c *credConn) refused(t *testing.T, subj string) {
	t.Helper()
	_ = c.Flush()
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, err := range c.errs {
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `"`+subj+`"`) {
				return nil
			}
		}
		return fmt.Errorf("no permissions violation for %q; errors %v", subj, c.errs)
	})
}

// TestWorkerOwnCredential runs the real binaries under broker --auth
// with a credential per worker (--auth-workers): whoever holds w1's
// credential is refused at the broker when it heartbeats w2 as draining,
// answers or hands over for w2, listens on w2's subject, or asks w2's
// claim; w2 stays up, and a client's requests all get the right result
// from both workers.
func TestWorkerOwnCredential(t *testing.T) {
	e := newEnv(t)
	auth := filepath.Join(e.dir, "auth")
	b := e.broker("broker", "--auth", auth, "--auth-workers", "w1,w2")
	e.dispatcher(b.URL, "d1", "--nkey", filepath.Join(auth, "dispatcher.nk"))
	for _, id := range []string{"w1", "w2"} {
		e.started(e.worker(b.URL, id, "--nkey", filepath.Join(auth, "workers", id+".nk")), "worker started")
	}
	client := filepath.Join(auth, "client.nk")
	status := func() ([]wire.Status, error) {
		code, out, errOut := e.run(20*time.Second, nil, "status", "--nats", b.URL, "--nkey", client, "--json")
		if code != 0 {
			return nil, fmt.Errorf("bilancia status: exit %d: %s", code, strings.TrimSpace(errOut))
		}
		var st []wire.Status
		return st, json.Unmarshal([]byte(out), &st)
	}
	testutil.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		st, err := status()
		if err != nil {
			return err
		}
		return upWorkers(st, 1, "w1", "w2")
	})

	evil := dialCred(t, b.URL, filepath.Join(auth, "workers", "w1.nk"), "_INBOX_WORKER.w1")
	draining, _ := json.Marshal(wire.Heartbeat{ID: "w2", Subject: "calc.worker.w2", State: wire.StateDraining, Seq: 1 << 40, StartedAt: time.Now()})
	wrong := nats.NewMsg("")
	wrong.Header.Set(wire.HdrRequestID, "any")
	wrong.Header.Set(wire.HdrWorker, "w2")
	wrong.Data = []byte(`{"result":666,"worker":"w2"}`)
	for _, subj := range []string{"calc.heartbeat.w2", "_INBOX.d1inbox.w2", "calc.orphan", "calc.orphan.w2", "calc.claim.w2"} {
		m := *wrong
		m.Subject = subj
		if strings.HasPrefix(subj, "calc.heartbeat.") {
			m.Data = draining
		}
		if err := evil.PublishMsg(&m); err != nil {
			t.Fatal(err)
		}
		evil.refused(t, subj)
	}
	if _, err := evil.Subscribe("calc.worker.w2", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	evil.refused(t, "calc.worker.w2")

	nc := dialCred(t, b.URL, client, "_INBOX_CLIENT.default")
	served := map[string]int{}
	for i := range 40 {
		r, err := nc.Request("calc.request", []byte(fmt.Sprintf("add %d 1", i)), 10*time.Second)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		var rep wire.Reply
		if err := json.Unmarshal(r.Data, &rep); err != nil || string(rep.Result) != fmt.Sprint(i+1) {
			t.Fatalf("add %d 1 = %s; want %d", i, r.Data, i+1)
		}
		served[rep.Worker]++
	}
	if served["w1"] == 0 || served["w2"] == 0 || len(served) != 2 {
		t.Fatalf("served by %v; want w1 and w2 only, both", served)
	}
	st, err := status()
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range st[0].Workers {
		if w.State != wire.StateUp {
			t.Errorf("worker %s is %s; want up", w.ID, w.State)
		}
	}
}
