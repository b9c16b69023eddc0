package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/internal/testutil"
)

// roundWriter records each write, and ends the watch after n of them.
type roundWriter struct {
	rounds []string
	n      int
	stop   context.CancelFunc
}

func (w *roundWriter) Write(p []byte) (int, error) {
	w.rounds = append(w.rounds, string(p))
	if len(w.rounds) == w.n {
		w.stop()
	}
	return len(p), nil
}

// TestStatusWatchTerminal: on a terminal each round is one write that
// clears the screen and draws the tables from the top; without one the
// rounds follow each other with no escape codes.
func TestStatusWatchTerminal(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	startRoles(t, &NATSFlags{NATS: url}, &NATSFlags{NATS: url})
	cl, err := client.Connect(client.Config{URL: url, Name: "test-status"})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	c := &StatusCmd{Wait: 50 * time.Millisecond, Interval: 10 * time.Millisecond}
	for _, terminal := range []bool{true, false} {
		ctx, cancel := context.WithCancel(context.Background())
		w := &roundWriter{n: 3, stop: cancel}
		if err := c.watch(ctx, cl, w, terminal); err != nil {
			t.Fatal(err)
		}
		cancel()
		if len(w.rounds) != 3 {
			t.Fatalf("terminal %v: %d rounds; want 3, the watch ending at Ctrl-C", terminal, len(w.rounds))
		}
		for i, r := range w.rounds {
			if got := strings.HasPrefix(r, clearScreen); got != terminal {
				t.Errorf("terminal %v: round %d starts with the clear code: %v", terminal, i, got)
			}
			if !terminal && strings.Contains(r, "\x1b") {
				t.Errorf("round %d holds an escape code without a terminal: %q", i, r)
			}
			if !strings.Contains(r, "dispatcher d-ctl") || !strings.Contains(r, "w-ctl") {
				t.Errorf("terminal %v: round %d = %q; want d-ctl's table", terminal, i, r)
			}
		}
	}
}

// TestStatusWatchProcess: bilancia status --watch, its output a file,
// prints table after table and exits 0 on SIGINT (Ctrl-C).
func TestStatusWatchProcess(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	startRoles(t, &NATSFlags{NATS: url}, &NATSFlags{NATS: url})
	p := startMain(t, "status-watch", "status", "--watch", "--interval", "50ms", "--nats", url)
	testutil.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		b, _ := os.ReadFile(p.Output())
		if n := bytes.Count(b, []byte("dispatcher d-ctl")); n < 3 {
			return fmt.Errorf("%d tables so far: %q", n, b)
		}
		return nil
	})
	if err := syscall.Kill(p.PID(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("status --watch did not stop on SIGINT")
	}
	if code := p.State().ExitCode(); code != 0 {
		t.Fatalf("status --watch exited %d on SIGINT; want 0", code)
	}
	if b, _ := os.ReadFile(p.Output()); bytes.Contains(b, []byte("\x1b")) {
		t.Fatalf("escape codes without a terminal: %q", b)
	}
}
