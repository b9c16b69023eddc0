package dispatcher_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/calcworker"
	"github.com/bilancia/bilancia/calcworker/calc"
	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/dispatcher"
	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

func TestRoundRobinExactOrder(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, nil)
	for _, id := range []string{"w-a", "w-b", "w-c"} {
		startWorker(t, url, id, nil)
	}
	waitState(t, d, up("w-a", "w-b", "w-c"))
	c := newClient(t, url, nil)
	var order []string
	for i := range 30 {
		r, err := c.Do(context.Background(), fmt.Sprintf("add %d 1", i))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if got := r.ResultString(); got != fmt.Sprint(i+1) {
			t.Fatalf("add %d 1 = %s; want %d", i, got, i+1)
		}
		order = append(order, r.Worker)
	}
	// A stable cycle: every window of 3 holds 3 different workers, and
	// request i+3 goes where request i went.
	for i := range order {
		if i+3 < len(order) && order[i] != order[i+3] {
			t.Fatalf("order = %v; not a cycle of 3", order)
		}
		if i+2 < len(order) && (order[i] == order[i+1] || order[i] == order[i+2] || order[i+1] == order[i+2]) {
			t.Fatalf("order = %v; 3 consecutive requests should reach 3 workers", order)
		}
	}
}

func TestNoLiveWorkerAnswers503(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	startDispatcher(t, url, nil)
	cl := newClient(t, url, nil)
	_, err := cl.Do(context.Background(), "add 1 2")
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeUnavailable {
		t.Fatalf("Do with no worker = %v; want a 503 (a 504 would mean it hung)", err)
	}
}

func TestInflightCapAnswers503(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, func(c *dispatcher.Config) { c.MaxInflight = 2 })
	startWorker(t, url, "w-a", nil)
	waitState(t, d, up("w-a"))
	cl := newClient(t, url, func(c *client.Config) { c.MaxAttempts = 1 })

	// Two slow requests fill the cap; hold them until the third is refused.
	results := make(chan error, 2)
	for range 2 {
		go func() { _, err := cl.Do(context.Background(), "sleep 2000"); results <- err }()
	}
	testutil.CheckFor(t, 5*time.Second, 2*time.Millisecond, func() error {
		if n := d.Stats().Inflight; n != 2 {
			return fmt.Errorf("in flight = %d; want 2", n)
		}
		return nil
	})
	_, err := cl.Do(context.Background(), "add 1 2")
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeUnavailable {
		t.Fatalf("request over the cap = %v; want 503", err)
	}
	for range 2 {
		if err := <-results; err != nil {
			t.Fatalf("request under the cap: %v", err)
		}
	}
}

func TestSilentWorkerIsRetriedElsewhere(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, func(c *dispatcher.Config) {
		c.AttemptTimeout = 100 * time.Millisecond
		c.Outlier = dispatcher.OutlierConfig{Consecutive: 3, BaseEjection: time.Minute}
	})
	startWorker(t, url, "w-a", nil)
	startWorker(t, url, "w-b", nil)
	// A worker that sends no progress messages: silent is all it seems.
	startWorker(t, url, "w-slow", func(c *calcworker.Config) {
		c.Env = calc.Env{Delay: 2 * time.Second}
		c.Progress = -1
	})
	waitState(t, d, up("w-a", "w-b", "w-slow"))
	cl := newClient(t, url, nil)
	for i := range 12 {
		r, err := cl.Do(context.Background(), fmt.Sprintf("add %d 0", i))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if r.Worker == "w-slow" {
			t.Fatalf("request %d answered by the slow worker", i)
		}
	}
	// Three timeouts in a row eject it; the others are 2 of 3, so it may go.
	waitState(t, d, map[string]string{"w-slow": wire.StateEjected})
}

// TestBadInputGetsClearErrors sends what a careless or hostile client
// might, through the dispatcher: each gets an error reply with the right
// code and a message, and nothing else changes.
func TestBadInputGetsClearErrors(t *testing.T) {
	srv := brokertest.Run(t)
	url := srv.ClientURL()
	d := startDispatcher(t, url, nil)
	startWorker(t, url, "w-a", nil)
	startWorker(t, url, "w-b", nil)
	waitState(t, d, up("w-a", "w-b"))
	nc := connect(t, url)
	// Room for the headers nats.go and the dispatcher add, up to the
	// broker's limit.
	maxData := int(nc.MaxPayload()) - 512
	tests := []struct {
		name    string
		payload []byte
		code    int
	}{
		{"unknown op", []byte("frobnicate 1 2"), 400},
		{"wrong arity", []byte("sub 1"), 400},
		{"not a number", []byte("add 1 x"), 400},
		{"NaN", []byte("add NaN 1"), 400},
		{"Inf in JSON", []byte(`{"op":"add","args":["Inf",1]}`), 400},
		{"division by zero", []byte("div 1 0"), 400},
		{"out of bounds", []byte("fact 100000"), 400},
		{"malformed JSON", []byte(`{"op":"add","args":[1,`), 400},
		{"not UTF-8", []byte("add \xff\xfe 1"), 400},
		{"empty", []byte(""), 400},
		{"at the broker's max size", append([]byte("add 1 "), make([]byte, maxData)...), 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := nc.Request("calc.request", tt.payload, 5*time.Second)
			if err != nil {
				t.Fatalf("request: %v", err)
			}
			e := wire.ErrorFromMsg(r)
			if e == nil || e.Code != tt.code || e.Message == "" {
				t.Fatalf("reply = %v (%q); want code %d with a message", e, r.Data, tt.code)
			}
			var body wire.Reply
			if err := json.Unmarshal(r.Data, &body); err != nil || body.Error == nil || body.Error.Code != tt.code {
				t.Fatalf("body = %q; want the same error in JSON", r.Data)
			}
		})
	}
	// Nothing else changed: both workers up, no ejection, service works.
	for _, w := range d.Status().Workers {
		if w.State != wire.StateUp || w.Ejections != 0 {
			t.Fatalf("after bad input: %s is %s (ejections %d)", w.ID, w.State, w.Ejections)
		}
	}
	if r, err := nc.Request("calc.request", []byte("add 2 3"), 5*time.Second); err != nil || wire.ErrorFromMsg(r) != nil {
		t.Fatalf("good request after bad ones: %v %v", err, r)
	}
}

// TestRetryBudgetBoundsHedges sends a burst at a slow worker with hedging
// on and a tiny retry budget: only the allowance of hedges goes out at
// once, the rest wait for their first attempt, and every request still
// succeeds.
func TestRetryBudgetBoundsHedges(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, func(c *dispatcher.Config) {
		c.HedgeAfter = 50 * time.Millisecond
		c.RetryBudget = 0.01 // of 20 in flight: 0, so MinRetries rules
		c.MinRetries = 1
		c.Outlier = dispatcher.OutlierConfig{Consecutive: -1}
	})
	startWorker(t, url, "w-fast", nil)
	startWorker(t, url, "w-slow", func(c *calcworker.Config) {
		c.Env = calc.Env{Delay: 500 * time.Millisecond}
		c.Concurrency = 64
	})
	waitState(t, d, up("w-fast", "w-slow"))
	cl := newClient(t, url, func(c *client.Config) { c.MaxAttempts = 1 })
	if errs := load(t, cl, 20, 20, func(i int) string { return fmt.Sprintf("add %d 1", i) }, nil); len(errs) > 0 {
		t.Fatalf("%d requests failed; first: %v", len(errs), errs[0])
	}
	st := d.Stats()
	if st.Retries == 0 || st.RetriesDenied == 0 {
		t.Fatalf("stats = %+v; want some hedges sent and some denied by the budget", st)
	}
}

// TestSameIDTwiceOnOneWorker: two requests with one id, pending on the
// same worker at once (a client resending, or two clients reusing an id),
// each get their own answer: the second cannot share the worker's reply
// subject, keyed by request id, and gets one of its own.
func TestSameIDTwiceOnOneWorker(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, nil)
	startWorker(t, url, "w-slow", func(c *calcworker.Config) { c.Env.Delay = 300 * time.Millisecond })
	waitState(t, d, up("w-slow"))
	nc := connect(t, url)
	send := func(cmd string) *nats.Msg {
		m := nats.NewMsg(wire.Subjects{}.Request())
		m.Header.Set(wire.HdrRequestID, "same-id")
		m.Data = []byte(cmd)
		return m
	}
	results := make([]string, 2)
	var wg sync.WaitGroup
	for i, cmd := range []string{"add 1 1", "add 2 2"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := nc.RequestMsg(send(cmd), 5*time.Second)
			if err != nil {
				results[i] = err.Error()
				return
			}
			var rep wire.Reply
			if err := json.Unmarshal(r.Data, &rep); err != nil {
				results[i] = err.Error()
				return
			}
			results[i] = string(rep.Result)
		}()
	}
	wg.Wait()
	if results[0] != "2" || results[1] != "4" {
		t.Fatalf("results = %q; want 2 and 4, each its own", results)
	}
}

// TestForwardKeepsTheClientsHeaders: a worker gets the headers the client
// sent, whether they are just the three a client sets (which the
// dispatcher re-encodes from pooled maps) or more; a request without any
// gets a generated id.
func TestForwardKeepsTheClientsHeaders(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	// The 5s default the checks below name, whatever the default is now.
	d := startDispatcher(t, url, func(c *dispatcher.Config) { c.RequestTimeout = 5 * time.Second })
	// A worker of our own that answers with the headers it got.
	wc := connect(t, url)
	subj := wire.Subjects{}.Worker("w-echo")
	if _, err := wc.Subscribe(subj, func(m *nats.Msg) {
		b, _ := json.Marshal(m.Header)
		out := nats.NewMsg(m.Reply)
		out.Header.Set(wire.HdrRequestID, m.Header.Get(wire.HdrRequestID))
		out.Data = b
		_ = m.RespondMsg(out)
	}); err != nil {
		t.Fatal(err)
	}
	hb, _ := json.Marshal(wire.Heartbeat{ID: "w-echo", Subject: subj, State: wire.StateUp, IntervalMS: 100, StartedAt: time.Now()})
	if err := wc.Publish(wire.Subjects{}.Heartbeat("w-echo"), hb); err != nil {
		t.Fatal(err)
	}
	waitState(t, d, up("w-echo"))

	nc := connect(t, url)
	ask := func(h nats.Header) nats.Header {
		t.Helper()
		m := &nats.Msg{Subject: wire.Subjects{}.Request(), Header: h, Data: []byte("add 1 2")}
		r, err := nc.RequestMsg(m, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var got nats.Header
		if err := json.Unmarshal(r.Data, &got); err != nil {
			t.Fatalf("%s: %v", r.Data, err)
		}
		return got
	}
	// Every forward carries the time left, at most what the client gave
	// (or the dispatcher's default), and asks for progress; one whose
	// client chose its id names the client's reply subject, an inbox,
	// whatever the client sent under that name.
	ids := map[string]bool{"id-1": true, "id-2": true, "id-3": true, "id-4": true, "id-5": true, "id-6": true}
	ours := func(h nats.Header, maxMS int64) nats.Header {
		t.Helper()
		out := nats.Header{}
		for k, v := range h {
			out[k] = v
		}
		ms, err := strconv.ParseInt(out.Get(wire.HdrTimeout), 10, 64)
		if err != nil || ms <= 0 || ms > maxMS || out.Get(wire.HdrProgress) != "1" {
			t.Fatalf("worker got %v; want %s in (0, %d] and %s: 1", h, wire.HdrTimeout, maxMS, wire.HdrProgress)
		}
		delete(out, wire.HdrTimeout)
		delete(out, wire.HdrProgress)
		if cr := out.Get(wire.HdrClientReply); (cr != "") != (ids[out.Get(wire.HdrRequestID)]) || (cr != "" && !strings.HasPrefix(cr, "_INBOX.")) {
			t.Fatalf("worker got %v; want %s, the client's inbox, on a forward of a request with an id of the client's", h, wire.HdrClientReply)
		}
		delete(out, wire.HdrClientReply)
		return out
	}
	sent := nats.Header{wire.HdrRequestID: {"id-1"}, wire.HdrClient: {"alice"}, wire.HdrTimeout: {"3000"}}
	want := nats.Header{wire.HdrRequestID: {"id-1"}, wire.HdrClient: {"alice"}}
	for range 3 { // the pooled maps are reused: nothing may leak from one to the next
		if got := ours(ask(sent), 3000); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("worker got %v; want %v", got, want)
		}
	}
	idOnly := nats.Header{wire.HdrRequestID: {"id-2"}}
	def := dispatcher.DefaultConfig().RequestTimeout.Milliseconds()
	if got := ours(ask(idOnly), def); fmt.Sprint(got) != fmt.Sprint(idOnly) {
		t.Fatalf("worker got %v; want %v", got, idOnly)
	}
	more := nats.Header{wire.HdrRequestID: {"id-3"}, "Traceparent": {"00-abc-def-01"}, wire.HdrClient: {"a", "b"}}
	if got := ours(ask(more), def); fmt.Sprint(got) != fmt.Sprint(more) {
		t.Fatalf("worker got %v; want %v", got, more)
	}
	// Calc-Hedge-Ms is the dispatcher's, not the worker's.
	hedged := nats.Header{wire.HdrRequestID: {"id-4"}, wire.HdrHedge: {"5000"}}
	if got := ours(ask(hedged), def); fmt.Sprint(got) != fmt.Sprint(nats.Header{wire.HdrRequestID: {"id-4"}}) {
		t.Fatalf("worker got %v; want %s alone", got, wire.HdrRequestID)
	}
	moreHedged := nats.Header{wire.HdrRequestID: {"id-5"}, "Traceparent": {"00-abc-def-01"}, wire.HdrHedge: {"5000"}}
	if got := ours(ask(moreHedged), def); fmt.Sprint(got) != fmt.Sprint(nats.Header{wire.HdrRequestID: {"id-5"}, "Traceparent": {"00-abc-def-01"}}) {
		t.Fatalf("worker got %v; want %s and Traceparent", got, wire.HdrRequestID)
	}
	forged := nats.Header{wire.HdrRequestID: {"id-6"}, wire.HdrClientReply: {"_INBOX_CLIENT.victim.x"}}
	if got := ours(ask(forged), def); fmt.Sprint(got) != fmt.Sprint(nats.Header{wire.HdrRequestID: {"id-6"}}) {
		t.Fatalf("worker got %v; want %s alone", got, wire.HdrRequestID)
	}
	if got := ours(ask(nil), def); len(got) != 1 || got.Get(wire.HdrRequestID) == "" {
		t.Fatalf("worker got %v; want a generated %s alone", got, wire.HdrRequestID)
	}
}
