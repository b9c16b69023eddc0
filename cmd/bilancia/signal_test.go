//go:build unix

package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/internal/testutil"
)

// TestSignalLameDuckThenTerm: `bilancia signal ldm PID` puts a broker in
// lame duck mode, and the SIGTERM that follows (a container's stop, after
// its preStop hook) does not cut the lame duck short: the broker closes
// its clients, then exits 0.
func TestSignalLameDuckThenTerm(t *testing.T) {
	port := freePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	b := startMain(t, "broker", "broker", "--port", strconv.Itoa(port),
		"--lame-duck-duration", "6s", "--lame-duck-grace", "3s")
	told := make(chan struct{}, 1)
	var nc *nats.Conn
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if err := b.Alive(); err != nil {
			t.Fatal(err)
		}
		var err error
		nc, err = nats.Connect(url, nats.NoReconnect(), quiet,
			nats.LameDuckModeHandler(func(*nats.Conn) { told <- struct{}{} }))
		return err
	})
	defer nc.Close()

	s := startMain(t, "signal", "signal", "ldm", strconv.Itoa(b.PID()))
	if code, err := s.Wait(10 * time.Second); err != nil || code != 0 {
		t.Fatalf("signal ldm: exit %d, %v; want 0", code, err)
	}
	checkOutput(t, b, "Entering lame duck mode")
	if err := b.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-told:
	case <-time.After(10 * time.Second):
		t.Fatal("the client was not told of the lame duck mode")
	}
	if code, err := b.Wait(30 * time.Second); err != nil || code != 0 {
		t.Fatalf("broker: exit %d, %v; want 0 (output in %s)", code, err, b.Output())
	}
	out, _ := os.ReadFile(b.Output())
	for _, want := range []string{"stop signal in lame duck mode", "Closing existing clients"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the broker's output has no %q: SIGTERM cut the lame duck short?\n%s", want, out)
		}
	}
}

// TestSignalRefused: a signal the command does not know, or no process,
// is an error that sends nothing.
func TestSignalRefused(t *testing.T) {
	if _, _, _, err := parse(t, "signal", "kill"); err == nil {
		t.Error("signal kill: parsed; want an error naming the choices")
	}
	if err := (&SignalCmd{Name: "ldm", PID: 0}).Run(); err == nil {
		t.Error("signal ldm 0: no error")
	}
}
