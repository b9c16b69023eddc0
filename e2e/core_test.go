package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

// cluster1 starts a broker, one dispatcher d1 and the workers ids (each
// with workerFlags), and waits until the dispatcher sees them all up.
func cluster1(t *testing.T, e *env, workerFlags []string, ids ...string) (url string, d *proc, workers map[string]*proc) {
	return cluster1With(t, e, false, workerFlags, ids...)
}

// cluster1With is cluster1 with, if inBroker, the dispatcher run inside
// the broker's process (broker --dispatcher): d is then the broker.
func cluster1With(t *testing.T, e *env, inBroker bool, workerFlags []string, ids ...string) (url string, d *proc, workers map[string]*proc) {
	t.Helper()
	var b *broker
	if inBroker {
		b = e.brokerDispatcher("broker", "d1")
		d = b.proc
	} else {
		b = e.broker("broker")
		d = e.dispatcher(b.URL, "d1")
	}
	workers = map[string]*proc{}
	for _, id := range ids {
		workers[id] = e.worker(b.URL, id, workerFlags...)
	}
	testutil.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		st, err := e.status(b.URL)
		if err != nil {
			return err
		}
		return upWorkers(st, 1, ids...)
	})
	return b.URL, d, workers
}

// TestEndToEndKillWorker runs `bilancia client` with random 300 against
// three worker processes and SIGKILLs one of them mid-run: every request
// must still succeed, exactly once, and the dispatcher must say the worker
// went down. The dispatcher runs as a process of its own, then inside the
// broker's.
func TestEndToEndKillWorker(t *testing.T) {
	t.Run("dispatcher process", func(t *testing.T) { testKillWorker(t, false) })
	t.Run("dispatcher in the broker", func(t *testing.T) { testKillWorker(t, true) })
}

func testKillWorker(t *testing.T, inBroker bool) {
	e := newEnv(t)
	// A small delay per request stretches the run to a couple of seconds,
	// so that the kill lands in its middle on any machine.
	url, d, workers := cluster1With(t, e, inBroker, []string{"--delay", "40ms"}, "w1", "w2", "w3")

	// Piped input (not -c) so that --inflight applies to random. No client
	// resends (--retries 0): the dispatcher alone must get every request
	// through, and a resend after a scheduling stall on this shared machine
	// would log the same id twice.
	stdin, feed := io.Pipe()
	cl := e.start("client", stdin, "client", "--nats", url, "--inflight", "8", "--retries", "0", "-q")
	if _, err := io.WriteString(feed, "random 300\n"); err != nil {
		t.Fatal(err)
	}
	feed.Close()

	testutil.CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		if n := len(requests(readLog(d.log))); n < 50 {
			return fmt.Errorf("%d request lines in the log, want 50", n)
		}
		return nil
	})
	if strings.Contains(cl.output(), " ok, ") {
		t.Fatalf("the client finished before the kill, the test proves nothing:\n%s", cl.output())
	}
	killedAt := time.Now()
	workers["w2"].kill(t)

	code, err := cl.wait(60 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	out := cl.output()
	if code != 0 {
		t.Fatalf("client exit %d, want 0:\n%s", code, out)
	}
	if !strings.Contains(out, "300 ok, 0 failed") {
		t.Fatalf("client output lacks \"300 ok, 0 failed\":\n%s", out)
	}

	// Stop the dispatcher (with its broker, if in it) so that its log is
	// complete, then read it.
	d.signal(t, syscall.SIGTERM)
	if code, err := d.wait(30 * time.Second); err != nil || code != 0 {
		t.Fatalf("dispatcher exit %d, %v", code, err)
	}
	lines := readLog(d.log)
	reqs := requests(lines)
	ids := map[string]logLine{}
	for _, r := range reqs {
		if r.Status != 200 {
			t.Errorf("request line with status %d, want 200: %s", r.Status, r.raw)
		}
		if first, ok := ids[r.ID]; ok {
			t.Errorf("request %s logged twice:\n%s\n%s", r.ID, first.raw, r.raw)
		}
		ids[r.ID] = r
	}
	if len(reqs) != 300 {
		t.Errorf("%d request lines in the log, want 300", len(reqs))
	}
	down, ok := event(lines, "worker down", "w2", killedAt)
	if !ok {
		t.Fatalf("no \"worker down\" line for w2 in the log")
	}
	if down.Reason != "no responders" && !strings.HasPrefix(down.Reason, "no heartbeat") {
		t.Errorf("w2 down with reason %q, want \"no responders\" or a heartbeat timeout", down.Reason)
	}
	var after int
	for _, r := range reqs {
		if r.Time.After(killedAt) {
			after++
		}
	}
	t.Logf("w2 down %v after the kill (%s); %d of 300 requests answered after the kill",
		down.Time.Sub(killedAt).Round(time.Millisecond), down.Reason, after)
}

// TestEndToEndNATSCLIShape talks to Bilancia as `nats req` and `nats sub`
// do: plain NATS, no headers.
func TestEndToEndNATSCLIShape(t *testing.T) {
	e := newEnv(t)
	url, _, _ := cluster1(t, e, nil, "w1")
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	hbs, err := nc.SubscribeSync("calc.heartbeat.>")
	if err != nil {
		t.Fatal(err)
	}

	m, err := nc.Request("calc.request", []byte("add 2 3"), 10*time.Second)
	if err != nil {
		t.Fatalf("request add 2 3: %v", err)
	}
	var rep map[string]json.RawMessage
	if err := json.Unmarshal(m.Data, &rep); err != nil {
		t.Fatalf("reply %q: %v", m.Data, err)
	}
	if got := string(rep["result"]); got != "5" {
		t.Errorf("add 2 3: result = %s; want 5 (reply %s)", got, m.Data)
	}
	if got := string(rep["worker"]); got != `"w1"` {
		t.Errorf("add 2 3: worker = %s; want \"w1\"", got)
	}
	if c := m.Header.Get(wire.HdrErrorCode); c != "" {
		t.Errorf("add 2 3: error code header %q on a success", c)
	}

	m, err = nc.Request("calc.request", []byte(`{"op":"div","args":[1,0]}`), 10*time.Second)
	if err != nil {
		t.Fatalf("request div 1 0: %v", err)
	}
	if got := m.Header.Get("Nats-Service-Error-Code"); got != "400" {
		t.Errorf("div 1 0: Nats-Service-Error-Code = %q; want 400 (reply %s)", got, m.Data)
	}
	if m.Header.Get("Nats-Service-Error") == "" {
		t.Errorf("div 1 0: no Nats-Service-Error message")
	}
	var er wire.Reply
	if err := json.Unmarshal(m.Data, &er); err != nil || er.Error == nil || er.Error.Code != 400 {
		t.Errorf("div 1 0: body %s does not carry error code 400 (%v)", m.Data, err)
	}

	hm, err := hbs.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("no heartbeat on calc.heartbeat.>: %v", err)
	}
	if hm.Subject != "calc.heartbeat.w1" {
		t.Errorf("heartbeat subject %q; want calc.heartbeat.w1", hm.Subject)
	}
	var hb map[string]json.RawMessage
	if err := json.Unmarshal(hm.Data, &hb); err != nil {
		t.Fatalf("heartbeat %q: %v", hm.Data, err)
	}
	for _, k := range []string{"id", "subject", "state", "seq", "interval_ms", "inflight", "served", "started_at", "version"} {
		if _, ok := hb[k]; !ok {
			t.Errorf("heartbeat lacks %q: %s", k, hm.Data)
		}
	}
	if string(hb["id"]) != `"w1"` || string(hb["state"]) != `"up"` || string(hb["subject"]) != `"calc.worker.w1"` ||
		string(hb["interval_ms"]) != "200" {
		t.Errorf("heartbeat %s: want id w1, state up, subject calc.worker.w1, interval_ms 200", hm.Data)
	}
}

// TestEndToEndDrain SIGTERMs a worker under load: no request may fail, the
// worker must say it drains and exit 0.
func TestEndToEndDrain(t *testing.T) {
	e := newEnv(t)
	url, d, workers := cluster1(t, e, nil, "w1", "w2", "w3")

	cl, err := client.Connect(client.Config{URL: url, Name: "e2e-drain"})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	// A bounded load: 8 senders, each at most 100 requests or 20 s, mixing
	// fast ops with 100 ms sleeps so that some are in flight on w2 when it
	// gets SIGTERM.
	const senders, perSender = 8, 100
	type res struct {
		n      int
		errs   []string
		byW2   int
		sleeps int
	}
	results := make(chan res, senders)
	stop := make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	for s := range senders {
		go func() {
			var r res
			end := time.Now().Add(20 * time.Second)
			for i := 0; i < perSender && time.Now().Before(end); i++ {
				select {
				case <-stop:
					results <- r
					return
				default:
				}
				cmd := "add " + strconv.Itoa(s) + " " + strconv.Itoa(i)
				want := strconv.Itoa(s + i)
				if i%4 == 0 {
					cmd, want = "sleep 100", ""
					r.sleeps++
				}
				rr, err := cl.Do(ctx, cmd)
				r.n++
				switch {
				case err != nil:
					r.errs = append(r.errs, fmt.Sprintf("%s: %v", cmd, err))
				case want != "" && rr.ResultString() != want:
					r.errs = append(r.errs, fmt.Sprintf("%s = %s; want %s", cmd, rr.ResultString(), want))
				case rr.Worker == "w2":
					r.byW2++
				}
			}
			results <- r
		}()
	}
	collected := false
	collect := func() (n, byW2 int, errs []string) {
		collected = true
		for range senders {
			r := <-results
			n += r.n
			byW2 += r.byW2
			errs = append(errs, r.errs...)
		}
		return
	}
	defer func() {
		if !collected {
			close(stop)
			collect()
		}
	}()

	// SIGTERM w2 once it has work in hand.
	testutil.CheckFor(t, 20*time.Second, 5*time.Millisecond, func() error {
		sctx, scancel := context.WithTimeout(ctx, 2*time.Second)
		defer scancel()
		st, err := cl.Status(sctx, time.Millisecond)
		if err != nil {
			return err
		}
		for _, w := range st[0].Workers {
			if w.ID == "w2" && w.Forwarded >= 20 && w.Inflight > 0 {
				return nil
			}
		}
		return fmt.Errorf("w2 not busy yet: %+v", st[0].Workers)
	})
	termAt := time.Now()
	workers["w2"].signal(t, syscall.SIGTERM)
	code, err := workers["w2"].wait(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 {
		t.Errorf("w2 exit %d after SIGTERM, want 0:\n%s", code, workers["w2"].output())
	}
	n, byW2, errs := collect()
	for _, msg := range errs {
		t.Errorf("request failed: %s", msg)
	}
	if n != senders*perSender {
		t.Errorf("%d requests sent, want %d", n, senders*perSender)
	}
	wout := workers["w2"].output()
	if !strings.Contains(wout, "worker draining") {
		t.Errorf("w2 did not log \"worker draining\":\n%s", wout)
	}
	if !regexp.MustCompile(`worker stopped.*errors=0`).MatchString(wout) {
		t.Errorf("w2 did not stop with errors=0:\n%s", wout)
	}
	var lines []logLine
	testutil.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		lines = readLog(d.log)
		if _, ok := event(lines, "worker draining", "w2", termAt.Add(-time.Second)); !ok {
			return fmt.Errorf("no \"worker draining\" line for w2 in the dispatcher's log")
		}
		return nil
	})
	drain, _ := event(lines, "worker draining", "w2", termAt.Add(-time.Second))
	// Once the dispatcher knows, nothing new goes to w2.
	for _, r := range requests(lines) {
		if r.Worker == "w2" && r.start().After(drain.Time) {
			t.Errorf("request forwarded to w2 after it said it drains: %s", r.raw)
		}
	}
	if l, ok := event(lines, "worker down", "w2", termAt); ok && l.Reason == "no responders" {
		t.Errorf("a request reached w2 after it unsubscribed: %s", l.raw)
	}
	t.Logf("%d requests, %d answered by w2; w2 announced draining %v after SIGTERM",
		n, byW2, drain.Time.Sub(termAt).Round(time.Millisecond))
}

// TestClientNoServer: with no NATS server, the client says so in one plain
// sentence and exits 1, at once.
func TestClientNoServer(t *testing.T) {
	e := newEnv(t)
	port := freePort(t)
	start := time.Now()
	code, out, errOut := e.run(20*time.Second, nil, "client", "--nats", fmt.Sprintf("nats://127.0.0.1:%d", port), "-c", "add 1 2")
	took := time.Since(start)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if out != "" {
		t.Errorf("stdout %q, want nothing", out)
	}
	msg := strings.TrimSpace(errOut)
	if msg == "" || strings.Contains(msg, "\n") {
		t.Errorf("stderr %q, want one line", errOut)
	}
	if !strings.Contains(msg, "no NATS server") || !strings.HasSuffix(msg, ".") {
		t.Errorf("stderr %q, want a plain sentence saying no NATS server answered", msg)
	}
	// A hang detector, not a speed test: the client must not retry for long.
	if took > 10*time.Second {
		t.Errorf("took %v to give up", took)
	}
	t.Logf("%v: %s", took.Round(time.Millisecond), msg)
}

// TestEndToEndBrokerWithDispatcherDies runs two clustered brokers, each
// with a dispatcher inside (broker --dispatcher), and SIGKILLs the broker
// whose dispatcher is serving a client's random 300: the requests that
// dispatcher held die with it, and the client must get every one answered
// through the other, after reconnecting to its broker.
func TestEndToEndBrokerWithDispatcherDies(t *testing.T) {
	e := newEnv(t)
	b1 := e.brokerDispatcher("b1", "d1", "--cluster-port=-1", "--name=b1")
	b2 := e.brokerDispatcher("b2", "d2", "--cluster-port=-1", "--name=b2", "--routes="+b1.RouteURL)
	brokers := map[string]*broker{"d1": b1, "d2": b2}
	logs := map[string]string{"d1": b1.log, "d2": b2.log}
	urls := b1.URL + "," + b2.URL
	for _, id := range []string{"w1", "w2", "w3"} {
		e.worker(urls, id, "--delay", "40ms")
	}
	testutil.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		st, err := e.status(b1.URL)
		if err != nil {
			return err
		}
		return upWorkers(st, 2, "w1", "w2", "w3")
	})

	stdin, feed := io.Pipe()
	cl := e.start("client", stdin, "client", "--nats", urls, "--inflight", "8", "-q")
	if _, err := io.WriteString(feed, "random 300\n"); err != nil {
		t.Fatal(err)
	}
	feed.Close()
	// NATS gives a request to a dispatcher on the client's own broker:
	// the one whose log fills is the one to kill.
	var serving string
	testutil.CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		for id, path := range logs {
			if len(requests(readLog(path))) >= 50 {
				serving = id
				return nil
			}
		}
		return errors.New("no dispatcher has logged 50 requests yet")
	})
	if strings.Contains(cl.output(), " ok, ") {
		t.Fatalf("the client finished before the kill, the test proves nothing:\n%s", cl.output())
	}
	brokers[serving].kill(t)

	code, err := cl.wait(60 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if out := cl.output(); code != 0 || !strings.Contains(out, "300 ok, 0 failed") {
		t.Fatalf("client exit %d after its dispatcher's broker died; want 0 and \"300 ok, 0 failed\":\n%s", code, out)
	}
	other := "d1"
	if serving == "d1" {
		other = "d2"
	}
	// The survivor's log is complete once its broker stops.
	brokers[other].signal(t, syscall.SIGTERM)
	if code, err := brokers[other].wait(30 * time.Second); err != nil || code != 0 {
		t.Fatalf("broker with %s: exit %d, %v", other, code, err)
	}
	n := len(requests(readLog(logs[other])))
	if n == 0 {
		t.Fatalf("%s logged no request after %s's broker died", other, serving)
	}
	t.Logf("killed the broker of %s; %s then logged %d requests", serving, other, n)
}
