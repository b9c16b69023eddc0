package repl

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

// holdResponder answers each request only when release is closed, as a
// dispatcher holding a long job; held counts the requests it holds.
func holdResponder(t *testing.T, url string, release <-chan struct{}) chan struct{} {
	t.Helper()
	nc := connect(t, url)
	held := make(chan struct{}, 16)
	_, err := nc.QueueSubscribe("calc.request", wire.DispatcherQueue, func(m *nats.Msg) {
		held <- struct{}{}
		go func() {
			<-release
			out := nats.NewMsg(m.Reply)
			out.Header.Set(wire.HdrWorker, "w-a")
			out.Data, _ = json.Marshal(wire.Reply{Result: json.RawMessage(`"w-a"`), Worker: "w-a"})
			_ = nc.PublishMsg(out)
		}()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return held
}

// TestSignalWithRequestInFlight: when ctx ends (SIGTERM to up) while a
// request is held, the REPL prints the reply that comes within the grace,
// not Go's "context canceled"; without a grace it says, with a code,
// that the client stopped.
func TestSignalWithRequestInFlight(t *testing.T) {
	for _, tc := range []struct {
		name  string
		grace time.Duration
		want  *regexp.Regexp
	}{
		{"grace", time.Minute, regexp.MustCompile(`^\[w-a\] sleep 1500 = w-a +\(\d+\.\d+ m?s\)\n$`)},
		{"none", 0, regexp.MustCompile(`^\[error 504\] sleep 1500: the client stopped \(a signal\) before the reply came \(\d+\.\d+ m?s\)\n$`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := startServer(t)
			release := make(chan struct{})
			held := holdResponder(t, url, release)
			cl := newClient(t, url, client.Config{})
			ctx, cancel := context.WithCancel(context.Background())
			var out testutil.SyncBuffer
			done := make(chan int, 1)
			go func() {
				done <- RunCommandsWith(ctx, cl, []string{"sleep 1500"}, Config{Out: &out, Grace: tc.grace})
			}()
			<-held
			cancel()
			if tc.grace > 0 {
				// The reply comes after ctx ended, within the grace.
				select {
				case <-done:
					t.Fatalf("the REPL returned before the reply: %q", out.String())
				case <-time.After(50 * time.Millisecond):
				}
			}
			close(release)
			<-done
			if got := out.String(); !tc.want.MatchString(got) {
				t.Errorf("output = %q; want it to match %s", got, tc.want)
			}
		})
	}
}

// TestLongResults: a long result is cut unless Full, and `last` prints
// the last one whole.
func TestLongResults(t *testing.T) {
	url := startServer(t)
	startResponder(t, url, "w-a")
	cl := newClient(t, url, client.Config{})
	var out testutil.SyncBuffer
	RunCommandsWith(context.Background(), cl, []string{"fib 1000", "last"}, Config{Out: &out})
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	const fib1000 = "43466557686937456435688527675040625802564660517371780402481729089536555417949051890403879840079255169295922593080322634775209689623239873322471161642996440906533187938298969649928516003704476137795166849228875"
	if len(lines) != 2 || !strings.Contains(lines[0], "…") || lines[1] != fib1000 {
		t.Errorf("fib 1000, last = %q; want the result cut, then whole", lines)
	}
	var full testutil.SyncBuffer
	RunCommandsWith(context.Background(), cl, []string{"fib 1000"}, Config{Out: &full, Full: true})
	if !strings.Contains(full.String(), "= "+fib1000+" ") {
		t.Errorf("fib 1000 with Full = %q; want the whole number", full.String())
	}
}
