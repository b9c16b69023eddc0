package repl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/bilancia/bilancia/calcworker/calc"
	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// readline's key loop blocks for good on Close after a line was
		// read (it sends EOF into a full channel); a library bug, once per
		// interactive Run.
		goleak.IgnoreTopFunction("github.com/chzyer/readline.(*Operation).ioloop"),
	)
}

// startServer runs an embedded nats-server on a random port.
func startServer(t testing.TB) string {
	t.Helper()
	opts := natsserver.DefaultTestOptions
	opts.Port = -1
	srv := natsserver.RunServer(&opts)
	t.Cleanup(srv.Shutdown)
	return srv.ClientURL()
}

func connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// startResponder stands in for a dispatcher and its worker: it computes
// every request itself, as worker id, and counts what it answered.
func startResponder(t testing.TB, url, id string) *atomic.Int64 {
	t.Helper()
	nc := connect(t, url)
	var n atomic.Int64
	_, err := nc.QueueSubscribe("calc.request", wire.DispatcherQueue, func(m *nats.Msg) {
		reqID := m.Header.Get(wire.HdrRequestID)
		reply, err := calc.Compute(context.Background(), m.Data, calc.Env{WorkerID: id})
		var out *nats.Msg
		if err != nil {
			var we *wire.Error
			if !errors.As(err, &we) {
				we = wire.NewError(wire.CodeInternal, err.Error())
			}
			out = wire.ErrorMsg(reqID, we)
		} else {
			reply.ID, reply.Worker = reqID, id
			out = nats.NewMsg("")
			out.Data, _ = json.Marshal(reply)
		}
		out.Header.Set(wire.HdrWorker, id)
		out.Subject = m.Reply
		n.Add(1)
		_ = nc.PublishMsg(out)
	})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	return &n
}

func newClient(t testing.TB, url string, cfg client.Config) *client.Client {
	t.Helper()
	cfg.URL = url
	cl, err := client.Connect(cfg)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

var (
	replyLine   = regexp.MustCompile(`^\[w-[ab]\] .+ = .+ +\(\d+\.\d+ (ms|s)\)( sends=\d+)?$`)
	errorLine   = regexp.MustCompile(`^\[error( \d+)?\] .+: .+ \(\d+\.\d+ (ms|s)\)( sends=\d+)?$`)
	summaryLine = regexp.MustCompile(`^\d+ ok, \d+ failed in \d+\.\d\d s \(\d+ req/s\), p50 (\d+\.\d+ (ms|s)|-), p99 (\d+\.\d+ (ms|s)|-)$`)
	workersLine = regexp.MustCompile(`^per worker: (none|w-\S+ \d+(, w-\S+ \d+)*)$`)
)

func TestRunCommands(t *testing.T) {
	url := startServer(t)
	na := startResponder(t, url, "w-a")
	nb := startResponder(t, url, "w-b")
	cl := newClient(t, url, client.Config{})

	var out testutil.SyncBuffer
	failed := RunCommands(context.Background(), cl, []string{"add 2 3", "div 1 0", "random 50", "exit", "add 7 7"}, &out)
	got := out.String()
	if failed != 1 {
		t.Errorf("failed = %d; want 1\n%s", failed, got)
	}
	for _, want := range []string{"] add 2 3 = 5 ", "[error 400] div 1 0: ", "\n50 ok, 0 failed in "} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "add 7 7") {
		t.Errorf("a command after exit ran:\n%s", got)
	}
	if n := na.Load() + nb.Load(); n != 52 {
		t.Errorf("responders answered %d; want 52", n)
	}

	// Every line is whole: concurrent replies never interleave mid-line.
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(lines) != 54 {
		t.Fatalf("got %d lines; want 52 replies + 2 summary lines:\n%s", len(lines), got)
	}
	for _, l := range lines {
		if !replyLine.MatchString(l) && !errorLine.MatchString(l) && !summaryLine.MatchString(l) && !workersLine.MatchString(l) {
			t.Errorf("malformed line %q", l)
		}
	}
	// The summary comes after all 50 replies of its run.
	if !summaryLine.MatchString(lines[52]) || !workersLine.MatchString(lines[53]) {
		t.Errorf("summary is not last:\n%s", got)
	}
	// Per worker: sorted by id, adding up to the 50 replies of the run.
	m := regexp.MustCompile(`^per worker: (?:w-a (\d+))?(?:, )?(?:w-b (\d+))?$`).FindStringSubmatch(lines[53])
	if m == nil {
		t.Fatalf("workers line = %q; want w-a then w-b", lines[53])
	}
	a, _ := strconv.Atoi(m[1]) // "" (no reply from that worker) = 0
	b, _ := strconv.Atoi(m[2])
	if a+b != 50 {
		t.Errorf("workers line = %q; want counts adding up to 50", lines[53])
	}
}

func TestPerWorkerSummary(t *testing.T) {
	url := startServer(t)
	na := startResponder(t, url, "w-a")
	nb := startResponder(t, url, "w-b")
	cl := newClient(t, url, client.Config{})

	var out testutil.SyncBuffer
	if failed := RunCommands(context.Background(), cl, []string{"random 40 -q"}, &out); failed != 0 {
		t.Fatalf("failed = %d; want 0\n%s", failed, out.String())
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("-q printed %d lines; want only the summary:\n%s", len(lines), out.String())
	}
	var parts []string
	for _, w := range []struct {
		id string
		n  int64
	}{{"w-a", na.Load()}, {"w-b", nb.Load()}} {
		if w.n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", w.id, w.n))
		}
	}
	if want := "per worker: " + strings.Join(parts, ", "); lines[1] != want {
		t.Errorf("workers line = %q; want %q", lines[1], want)
	}
	if !strings.HasPrefix(lines[0], "40 ok, 0 failed in ") {
		t.Errorf("summary = %q; want 40 ok, 0 failed", lines[0])
	}
}

func TestRunPiped(t *testing.T) {
	url := startServer(t)
	startResponder(t, url, "w-a")
	cl := newClient(t, url, client.Config{})

	in := strings.Join([]string{
		"# a comment",
		"",
		"add 1 2",
		"   mul 2 3   ",
		`{"op":"sub","args":[9,4]}`,
		"div 1 0",
		"random 5 -q",
		"QUIT",
		"add 9 9",
	}, "\n") + "\n"
	var out testutil.SyncBuffer
	failed, err := Run(context.Background(), cl, Config{In: strings.NewReader(in), Out: &out})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	got := out.String()
	if failed != 1 {
		t.Errorf("failed = %d; want 1\n%s", failed, got)
	}
	want := []*regexp.Regexp{
		regexp.MustCompile(`^\[w-a\] add 1 2 = 3 +\(\d+\.\d ms\)$`),
		regexp.MustCompile(`^\[w-a\] mul 2 3 = 6 +\(\d+\.\d ms\)$`),
		regexp.MustCompile(`^\[w-a\] \{"op":"sub","args":\[9,4\]\} = 5 +\(\d+\.\d ms\)$`),
		regexp.MustCompile(`^\[error 400\] div 1 0: .*division by zero.* \(\d+\.\d ms\)$`),
		regexp.MustCompile(`^5 ok, 0 failed in `),
		regexp.MustCompile(`^per worker: w-a 5$`),
	}
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d lines; want %d:\n%s", len(lines), len(want), got)
	}
	for i, re := range want {
		if !re.MatchString(lines[i]) {
			t.Errorf("line %d = %q; want it to match %s", i, lines[i], re)
		}
	}
}

func TestRandomInvalidN(t *testing.T) {
	url := startServer(t)
	n := startResponder(t, url, "w-a")
	cl := newClient(t, url, client.Config{})

	for _, tc := range []struct{ name, cmd, want string }{
		{"zero", "random 0", "random: N must be a whole number from 1 to 1000000, got \"0\""},
		{"negative", "random -3", "random: N must be a whole number from 1 to 1000000, got \"-3\""},
		{"too many", "random 1000001", "random: N must be a whole number from 1 to 1000000, got \"1000001\""},
		{"not a number", "random lots", "random: N must be a whole number from 1 to 1000000, got \"lots\""},
		{"missing", "random", "random: usage: random N [-q]"},
		{"two", "random 1 2", "random: usage: random N [-q]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if failed := RunCommands(context.Background(), cl, []string{tc.cmd}, &out); failed != 0 {
				t.Errorf("failed = %d; want 0", failed)
			}
			if got := out.String(); got != tc.want+"\n" {
				t.Errorf("%s printed %q; want %q", tc.cmd, got, tc.want)
			}
		})
	}
	if got := n.Load(); got != 0 {
		t.Errorf("responder answered %d requests; want none", got)
	}
}

func TestNoResponder(t *testing.T) {
	url := startServer(t)
	cl := newClient(t, url, client.Config{Timeout: 300 * time.Millisecond})

	var out bytes.Buffer
	failed := RunCommands(context.Background(), cl, []string{"add 1 2"}, &out)
	if failed != 1 {
		t.Errorf("failed = %d; want 1", failed)
	}
	re := regexp.MustCompile(`^\[error 503\] add 1 2: no dispatcher is listening on calc.request \(\d+\.\d+ m?s\)\n$`)
	if !re.MatchString(out.String()) {
		t.Errorf("output = %q; want it to match %s", out.String(), re)
	}
}

func TestStatusCommand(t *testing.T) {
	url := startServer(t)
	nc := connect(t, url)
	hb := time.Now().Add(-400 * time.Millisecond)
	st := wire.Status{Dispatcher: "d-1", Version: "0.1.0", Workers: []wire.WorkerStatus{
		{ID: "w-a", State: wire.StateUp, LastHeartbeat: hb, Served: 7},
	}}
	if _, err := nc.Subscribe("calc.status", func(m *nats.Msg) {
		b, _ := json.Marshal(st)
		_ = m.Respond(b)
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, url, client.Config{})

	var out bytes.Buffer
	if failed := RunCommands(context.Background(), cl, []string{"status"}, &out); failed != 0 {
		t.Errorf("failed = %d; want 0\n%s", failed, out.String())
	}
	got := out.String()
	for _, want := range []string{"dispatcher d-1 (v0.1.0): served 0, failed 0, in-flight 0\n", "LAST HEARTBEAT", "\nw-a "} {
		if !strings.Contains(got, want) {
			t.Errorf("status output lacks %q:\n%s", want, got)
		}
	}

	// With nobody answering, status fails plainly and counts.
	cl2 := newClient(t, startServer(t), client.Config{})
	out.Reset()
	if failed := RunCommands(context.Background(), cl2, []string{"status"}, &out); failed != 1 {
		t.Errorf("failed = %d; want 1", failed)
	}
	if got, want := out.String(), "[error 503] status: no dispatcher answers on calc.status\n"; got != want {
		t.Errorf("status without dispatcher = %q; want %q", got, want)
	}
}

func TestPrintStatus(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	st := []wire.Status{
		{
			Dispatcher: "d-2", Version: "0.1.0", Strategy: "round-robin", StartedAt: now.Add(-192 * time.Second),
			Served: 1000, Failed: 3, Inflight: 2,
			Workers: []wire.WorkerStatus{
				{ID: "w-81c0", State: wire.StateUp, Reason: "first heartbeat", LastHeartbeat: now.Add(-400 * time.Millisecond), Served: 30, Forwarded: 334, Inflight: 1},
				{ID: "w-3f2a", State: wire.StateDown, Reason: "no heartbeat for 3.127s", LastHeartbeat: now.Add(-32300 * time.Millisecond), Served: 333, Forwarded: 333, Errors: 2, Ejections: 1},
				{ID: "w-d04e", State: wire.StateDraining, LastHeartbeat: now.Add(-125 * time.Second), Forwarded: 12},
				{ID: "w-f00d", State: wire.StateUp, Reason: "first heartbeat", Silent: true, LastHeartbeat: now.Add(-1900 * time.Millisecond), Forwarded: 4, Inflight: 4},
			},
		},
		{Dispatcher: "d-1"},
	}
	var b bytes.Buffer
	PrintStatus(&b, st, now)
	want := `dispatcher d-1: served 0, failed 0, in-flight 0
  no workers

dispatcher d-2 (v0.1.0, round-robin, up 3m12s): served 1000, failed 3, in-flight 2
ID      STATE                LAST HEARTBEAT  FORWARDED  IN-FLIGHT  ERRORS  EJECTIONS
w-81c0  up                   0.4s ago        334        1          0       0
w-3f2a  down (no heartbeat)  32.3s ago       333        0          2       1
w-d04e  draining             2m5s ago        12         0          0       0
w-f00d  up, silent           1.9s ago        4          4          0       0
`
	if got := b.String(); got != want {
		t.Errorf("PrintStatus =\n%s\nwant\n%s", got, want)
	}

	b.Reset()
	PrintStatus(&b, nil, now)
	if got, want := b.String(), "no dispatcher answered\n"; got != want {
		t.Errorf("PrintStatus(nil) = %q; want %q", got, want)
	}
	if st[0].Dispatcher != "d-2" {
		t.Errorf("PrintStatus reordered its argument")
	}
}

func TestFormatReply(t *testing.T) {
	ok := &client.Result{Worker: "w-3f2a", Sends: 1}
	ok.Reply.Result = json.RawMessage("5")
	retried := &client.Result{Worker: "w-3f2a", Sends: 2}
	retried.Reply.Result = json.RawMessage(`"12345678901234567890"`)
	for _, tc := range []struct {
		name string
		cmd  string
		r    *client.Result
		err  error
		want string
	}{
		{"ok", "add 2 3", ok, nil, "[w-3f2a] add 2 3 = 5                  (0.4 ms)"},
		{"error", "div 1 0", &client.Result{Sends: 1}, wire.NewError(400, "division by zero"), "[error 400] div 1 0: division by zero (0.4 ms)"},
		{"sends", "fact 22", retried, nil, "[w-3f2a] fact 22 = 12345678901234567890 (0.4 ms) sends=2"},
		{"no reply", "add 1 2", nil, wire.NewError(504, "no reply within 10s after 4 send(s)"), "[error 504] add 1 2: no reply within 10s after 4 send(s) (0.4 ms)"},
		{"closed", "add 1 2", nil, client.ErrClosed, "[error] add 1 2: client: closed       (0.4 ms)"},
		{"long", "expr " + strings.Repeat("1+", 100) + "1", ok, nil, "[w-3f2a] expr " + strings.Repeat("1+", 37) + "… = 5 (0.4 ms)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := formatReply(tc.cmd, tc.r, 400*time.Microsecond, tc.err); got != tc.want {
				t.Errorf("formatReply = %q; want %q", got, tc.want)
			}
		})
	}
	if got, want := fmtLatency(1250*time.Millisecond), "1.25 s"; got != want {
		t.Errorf("fmtLatency(1.25s) = %q; want %q", got, want)
	}
}

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	RunCommands(context.Background(), nil, []string{"help"}, &out)
	got := out.String()
	for _, want := range []string{"random N [-q]", "status", "last", "exit, quit", "add (somma, sum)", "expr (2+3)*4^2", "0 to 30000", "0 to 10000", "--max-sleep", "--timeout"} {
		if !strings.Contains(got, want) {
			t.Errorf("help lacks %q:\n%s", want, got)
		}
	}
}

// Cancelling ctx ends Run even while it waits for input that never comes.
func TestRunCancel(t *testing.T) {
	url := startServer(t)
	cl := newClient(t, url, client.Config{})
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() }) // lets the blocked reader end
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, cl, Config{In: pr, Out: io.Discard})
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v; want nil", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return after ctx was cancelled")
	}
}

// The interactive path, fed through a pipe: requests run in the background,
// every reply arrives whole, and exit waits for a random run still going.
func TestInteractive(t *testing.T) {
	url := startServer(t)
	startResponder(t, url, "w-a")
	cl := newClient(t, url, client.Config{})
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	var out testutil.SyncBuffer
	done := make(chan int, 1)
	go func() {
		failed, err := Run(context.Background(), cl, Config{
			In: pr, Out: &out, Err: io.Discard, Interactive: true,
			HistoryFile: t.TempDir() + "/history",
		})
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		done <- failed
	}()
	type1 := func(s string) {
		t.Helper()
		if _, err := io.WriteString(pw, s+"\n"); err != nil {
			t.Fatalf("type %q: %v", s, err)
		}
	}
	type1("add 2 3")
	testutil.CheckFor(t, 2*time.Second, 5*time.Millisecond, func() error {
		if !strings.Contains(out.String(), "[w-a] add 2 3 = 5") {
			return fmt.Errorf("no reply yet:\n%s", out.String())
		}
		return nil
	})
	type1("random 300")
	type1("div 1 0")
	type1("exit")
	select {
	case failed := <-done:
		if failed != 1 {
			t.Errorf("failed = %d; want 1", failed)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after exit")
	}
	got := out.String()
	if !strings.Contains(got, "300 ok, 0 failed") && !strings.Contains(got, "stopped early") {
		t.Errorf("no random summary:\n%s", got)
	}
	if !strings.Contains(got, "[error 400] div 1 0: ") {
		t.Errorf("no div reply:\n%s", got)
	}
}
