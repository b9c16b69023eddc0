package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

// TestAttackOnTheRealBinary: the attacks of the issue "Trust on the bus",
// from a plain NATS connection, on a dispatcher process with its log file
// and its stderr: a fake worker pointing at a sink, a 1 MB heartbeat, a
// 100 KB Calc-Client header (refused with a 400), line breaks and U+2028 in a hello, and 12,000
// made-up workers, more than the table's default cap of 10,000 and enough
// to pass the broker's 1 MB max payload in a status reply. What must hold:
// no request reaches the sink, every line of the log and of stderr stays
// short and is one line, `bilancia status`, `bilancia health dispatcher`
// and `bilancia health worker --seen-by` still answer, with a table of at
// most 10,000.
func TestAttackOnTheRealBinary(t *testing.T) {
	e := newEnv(t)
	url, d, _ := cluster1(t, e, nil, "w1")
	evil, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer evil.Close()
	var sunk atomic.Int64
	if _, err := evil.Subscribe("evil.sink", func(*nats.Msg) { sunk.Add(1) }); err != nil {
		t.Fatal(err)
	}
	beat := func(id, subject string) {
		b, _ := json.Marshal(wire.Heartbeat{ID: id, Subject: subject, State: wire.StateUp, Seq: 1, StartedAt: time.Now()})
		if err := evil.Publish("calc.heartbeat."+id, b); err != nil {
			t.Fatal(err)
		}
	}
	beat("evil1", "evil.sink")
	if err := evil.Publish("calc.heartbeat.w1", bytes.Repeat([]byte("x"), 1000_000)); err != nil {
		t.Fatal(err)
	}
	hello, _ := json.Marshal(wire.ClientHello{Name: "evil\n{\"msg\":\"request\"}\u2028", Host: strings.Repeat("h", 3000)})
	if err := evil.Publish("calc.client.connect", hello); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		// A header beyond its bound is refused with a 400 that names it;
		// the same request with a plain name reaches w1, never the sink.
		m := nats.NewMsg("calc.request")
		m.Header.Set(wire.HdrClient, strings.Repeat("c", 100_000))
		m.Data = []byte(fmt.Sprintf("add %d 1", i))
		r, err := evil.RequestMsg(m, 10*time.Second)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if e := wire.ErrorFromMsg(r); e == nil || e.Code != wire.CodeBadRequest || !strings.Contains(e.Message, wire.HdrClient) {
			t.Fatalf("request %d with a 100 KB %s: %s; want a 400 naming the header", i, wire.HdrClient, r.Data)
		}
		m.Header.Set(wire.HdrClient, "evil")
		if r, err = evil.RequestMsg(m, 10*time.Second); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if !strings.Contains(string(r.Data), `"worker":"w1"`) {
			t.Fatalf("request %d: %s; want an answer from w1", i, r.Data)
		}
	}
	if n := sunk.Load(); n != 0 {
		t.Fatalf("%d requests reached evil.sink", n)
	}

	for i := range 12_000 {
		beat(fmt.Sprintf("flood-%05d", i), "")
	}
	if err := evil.Flush(); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		st, err := e.status(url)
		if err != nil {
			return err
		}
		if len(st) != 1 || st[0].Total != 10_000 || !st[0].Truncated {
			return fmt.Errorf("status: %d answers; want one, with 10,000 workers, truncated", len(st))
		}
		return nil
	})
	if code, out, errOut := e.run(20*time.Second, nil, "health", "dispatcher", "--nats", url, "--id", "d1"); code != 0 {
		t.Fatalf("health dispatcher: exit %d: %s %s", code, out, errOut)
	}
	// w1 sorts after every flood-… row, beyond what fits: health asks
	// for its row by name.
	if code, out, errOut := e.run(20*time.Second, nil, "health", "worker", "--nats", url, "--id", "w1", "--seen-by", "1"); code != 0 {
		t.Fatalf("health worker --seen-by 1: exit %d: %s %s", code, out, errOut)
	}

	for name, text := range map[string]string{"log": readFile(d.log), "stderr": d.output()} {
		for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
			if len(l) > 2048 {
				t.Errorf("%s: a line of %d bytes: %.300s…", name, len(l), l)
			}
		}
		if strings.Contains(text, "\u2028") {
			t.Errorf("%s holds a raw U+2028", name)
		}
	}
	for _, l := range strings.Split(strings.TrimSpace(readFile(d.log)), "\n") {
		if !json.Valid([]byte(l)) {
			t.Errorf("log: %.300s is not one JSON line", l)
		}
	}
	// The flood outlasts the made-up workers' 600 ms dead-after: once the
	// table is full, the newest take the places of those gone down, so
	// "worker table full" may or may not be logged here (the dispatcher's
	// TestAttackTableFlood holds the cap against live ids).
}
