package client_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// responder answers calc.request like a dispatcher would, through f, which
// may return nil to drop a request (a dispatcher that died holding it).
func responder(t testing.TB, nc *nats.Conn, f func(m *nats.Msg, n int64) *nats.Msg) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	_, err := nc.QueueSubscribe("calc.request", wire.DispatcherQueue, func(m *nats.Msg) {
		if out := f(m, n.Add(1)); out != nil {
			out.Subject = m.Reply
			_ = nc.PublishMsg(out)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return &n
}

func ok(m *nats.Msg) *nats.Msg {
	out := nats.NewMsg("")
	out.Header.Set(wire.HdrWorker, "w-test")
	out.Header.Set(wire.HdrRequestID, m.Header.Get(wire.HdrRequestID))
	out.Data = []byte(`{"op":"add","result":5,"worker":"w-test"}`)
	return out
}

func newClient(t testing.TB, url string, cfg client.Config) *client.Client {
	t.Helper()
	cfg.URL = url
	c, err := client.Connect(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestDoHeaders(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	var got nats.Header
	responder(t, connect(t, url), func(m *nats.Msg, _ int64) *nats.Msg { got = m.Header; return ok(m) })
	c := newClient(t, url, client.Config{Name: "alice"})
	r, err := c.Do(context.Background(), "add 2 3")
	if err != nil {
		t.Fatal(err)
	}
	if r.ResultString() != "5" || r.Worker != "w-test" || r.Sends != 1 {
		t.Fatalf("result = %+v; want 5 from w-test in one send", r)
	}
	if got.Get(wire.HdrClient) != "alice" || got.Get(wire.HdrRequestID) != r.ID || got.Get(wire.HdrTimeout) == "" {
		t.Fatalf("headers = %v; want client alice, id %s and a timeout", got, r.ID)
	}
}

func TestRetryKeepsRequestIDAndFirstReplyWins(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	nc := connect(t, url)
	var mu sync.Mutex
	ids := map[string]int{}
	// The first send is swallowed (its dispatcher "died"); the second is
	// answered twice, as two dispatchers might: the caller sees one reply.
	n := responder(t, nc, func(m *nats.Msg, n int64) *nats.Msg {
		mu.Lock()
		ids[m.Header.Get(wire.HdrRequestID)]++
		mu.Unlock()
		if n == 1 {
			return nil
		}
		_ = nc.PublishMsg(&nats.Msg{Subject: m.Reply, Header: ok(m).Header, Data: ok(m).Data})
		return ok(m)
	})
	c := newClient(t, url, client.Config{AttemptTimeout: 50 * time.Millisecond, ProgressSilence: -1})
	r, err := c.Do(context.Background(), "add 2 3")
	if err != nil {
		t.Fatal(err)
	}
	if r.Sends != 2 || n.Load() != 2 {
		t.Fatalf("sends = %d, received = %d; want 2 and 2", r.Sends, n.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ids) != 1 || ids[r.ID] != 2 {
		t.Fatalf("request ids seen = %v; want %s twice", ids, r.ID)
	}
	if st := c.Stats(); st.Retries != 1 {
		t.Fatalf("stats = %+v; want 1 retry", st)
	}
}

func TestNoDispatcherThenOne(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	c := newClient(t, url, client.Config{Timeout: 200 * time.Millisecond})
	_, err := c.Do(context.Background(), "add 2 3")
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeUnavailable {
		t.Fatalf("Do with no dispatcher = %v; want 503", err)
	}
	// A dispatcher that appears while a request is retrying gets it.
	nc := connect(t, url)
	done := make(chan error, 1)
	go func() {
		_, err := c.Do(context.Background(), "add 2 3")
		done <- err
	}()
	responder(t, nc, func(m *nats.Msg, _ int64) *nats.Msg { return ok(m) })
	if err := <-done; err != nil {
		t.Fatalf("Do once a dispatcher listens: %v", err)
	}
}

func TestServiceErrorAndMaxAttempts(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	nc := connect(t, url)
	responder(t, nc, func(m *nats.Msg, _ int64) *nats.Msg {
		return wire.ErrorMsg(m.Header.Get(wire.HdrRequestID), wire.NewError(wire.CodeBadRequest, "division by zero"))
	})
	c := newClient(t, url, client.Config{MaxAttempts: 1})
	_, err := c.Do(context.Background(), "div 1 0")
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != 400 || we.Message != "division by zero" {
		t.Fatalf("Do = %v; want 400 division by zero", err)
	}
}

func TestDeadline504AndSingleSend(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	n := responder(t, connect(t, url), func(*nats.Msg, int64) *nats.Msg { return nil })
	c := newClient(t, url, client.Config{MaxAttempts: 1, AttemptTimeout: 10 * time.Millisecond, ProgressSilence: 10 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	_, err := c.Do(ctx, "add 1 1")
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeDeadline {
		t.Fatalf("Do = %v; want 504", err)
	}
	if got := n.Load(); got != 1 {
		t.Fatalf("sent %d times with MaxAttempts 1; want 1", got)
	}
}

func TestCloseEndsWaitingCalls(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	n := responder(t, connect(t, url), func(*nats.Msg, int64) *nats.Msg { return nil })
	c, err := client.Connect(client.Config{URL: url, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := c.Do(context.Background(), "add 1 1"); done <- err }()
	for n.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	c.Close()
	c.Close()
	if err := <-done; !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Do after Close = %v; want ErrClosed", err)
	}
	if _, err := c.Do(context.Background(), "add 1 1"); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Do on a closed client = %v; want ErrClosed", err)
	}
}

// TestCloseWithTheServerGone closes a client whose server has shut down
// while it tries to reconnect: Close must not wait for an answer that
// cannot come (it waited 10 s, nats.go's Flush timeout, before).
func TestCloseWithTheServerGone(t *testing.T) {
	b := brokertest.Run(t)
	c, err := client.Connect(client.Config{URL: b.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	b.Shutdown()
	testutil.CheckFor(t, 10*time.Second, time.Millisecond, func() error {
		if c.Conn().IsConnected() {
			return errors.New("the client has not noticed that its server is gone")
		}
		return nil
	})
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close still blocked after 5s with the server gone")
	}
	if !c.Conn().IsClosed() {
		t.Fatal("the client's own connection is still open after Close")
	}
}

func TestConnectNoServer(t *testing.T) {
	_, err := client.Connect(client.Config{URL: "nats://127.0.0.1:1"})
	if !errors.Is(err, client.ErrNoServer) {
		t.Fatalf("Connect = %v; want ErrNoServer", err)
	}
}

// TestRetryBudget swallows the first send of every request: with a budget
// of one retry at a time, the others wait their turn, and all succeed.
func TestRetryBudget(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	nc := connect(t, url)
	var mu sync.Mutex
	seen := map[string]bool{}
	responder(t, nc, func(m *nats.Msg, _ int64) *nats.Msg {
		id := m.Header.Get(wire.HdrRequestID)
		mu.Lock()
		defer mu.Unlock()
		if !seen[id] {
			seen[id] = true
			return nil // the first send is lost
		}
		return ok(m)
	})
	c := newClient(t, url, client.Config{AttemptTimeout: 20 * time.Millisecond, ProgressSilence: -1, RetryBudget: 0.01, MinRetries: 1})
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Do(context.Background(), "add 2 3"); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Do: %v", err)
	}
	if st := c.Stats(); st.Retries < 20 || st.RetriesDenied == 0 {
		t.Fatalf("stats = %+v; want 20 or more retries, some denied by the budget", st)
	}
}

// progressMsg is what a dispatcher sends while it holds request m.
func progressMsg(m *nats.Msg) *nats.Msg {
	return &nats.Msg{Subject: m.Reply, Header: nats.Header{
		wire.HdrProgress: {"1"}, wire.HdrRequestID: {m.Header.Get(wire.HdrRequestID)}}}
}

// TestProgressMeansNoResend: a dispatcher that holds a request for far
// longer than ProgressSilence, saying so every 20ms, gets it once; the
// caller sees the reply, not the progress messages.
func TestProgressMeansNoResend(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	nc := connect(t, url)
	n := responder(t, nc, func(m *nats.Msg, _ int64) *nats.Msg {
		if m.Header.Get(wire.HdrProgress) != "1" {
			t.Errorf("request headers %v; want %s: 1", m.Header, wire.HdrProgress)
		}
		go func() {
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for range 25 { // 500ms
				<-tick.C
				_ = nc.PublishMsg(progressMsg(m))
			}
			out := ok(m)
			out.Subject = m.Reply
			_ = nc.PublishMsg(out)
		}()
		return nil
	})
	c := newClient(t, url, client.Config{ProgressSilence: 150 * time.Millisecond})
	r, err := c.Do(context.Background(), "sleep 500")
	if err != nil {
		t.Fatal(err)
	}
	if r.Sends != 1 || n.Load() != 1 || r.ResultString() != "5" {
		t.Fatalf("result %+v, received %d; want one send, one request, result 5", r, n.Load())
	}
}

// TestSilenceMeansResend: a dispatcher that swallows a request and says
// nothing (it died) costs ProgressSilence, not AttemptTimeout.
func TestSilenceMeansResend(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	nc := connect(t, url)
	responder(t, nc, func(m *nats.Msg, n int64) *nats.Msg {
		if n == 1 {
			return nil
		}
		return ok(m)
	})
	c := newClient(t, url, client.Config{ProgressSilence: 100 * time.Millisecond, AttemptTimeout: time.Hour})
	r, err := c.Do(context.Background(), "add 2 3")
	if err != nil {
		t.Fatal(err)
	}
	if r.Sends != 2 || r.Latency < 100*time.Millisecond || r.Latency > 5*time.Second {
		t.Fatalf("result %+v; want 2 sends, the second after 100ms of silence", r)
	}
}
