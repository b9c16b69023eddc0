//go:build unix

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker"
	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/internal/supervise"
	"github.com/bilancia/bilancia/internal/testutil"
)

// quiet keeps nats.go from printing a test connection's asynchronous
// errors.
var quiet = nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})

// checkMaxPayload waits until a new connection to url is told want as the
// largest message, while p runs.
func checkMaxPayload(t *testing.T, p *supervise.Process, url string, want int64) {
	t.Helper()
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if err := p.Alive(); err != nil {
			t.Fatal(err)
		}
		nc, err := nats.Connect(url, nats.NoReconnect(), quiet)
		if err != nil {
			return err
		}
		defer nc.Close()
		if got := nc.MaxPayload(); got != want {
			return fmt.Errorf("max payload = %d; want %d", got, want)
		}
		return nil
	})
}

// checkOutput waits until p has printed want.
func checkOutput(t *testing.T, p *supervise.Process, want string) {
	t.Helper()
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if out, _ := os.ReadFile(p.Output()); !strings.Contains(string(out), want) {
			if err := p.Alive(); err != nil {
				t.Fatal(err)
			}
			return fmt.Errorf("no %q in the output yet", want)
		}
		return nil
	})
}

// stopMain sends p SIGTERM and checks that it exits with status 0.
func stopMain(t *testing.T, p *supervise.Process) {
	t.Helper()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, err := p.Wait(30 * time.Second); err != nil || code != 0 {
		t.Fatalf("%s after SIGTERM: exit %d, %v; want 0 (output in %s)", p.Name(), code, err, p.Output())
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestBrokerSIGHUP: bilancia broker --config, as a process, listens where
// the file says, applies the file's change on SIGHUP, ignores a SIGUSR1
// with no log to reopen, and ends with status 0 on SIGTERM.
func TestBrokerSIGHUP(t *testing.T) {
	port := freePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	conf := filepath.Join(t.TempDir(), "nats.conf")
	writeFile(t, conf, fmt.Sprintf("listen: 127.0.0.1:%d\nmax_payload: 2048\n", port))
	p := startMain(t, "broker", "broker", "--config", conf)
	checkMaxPayload(t, p, url, 2048)

	writeFile(t, conf, fmt.Sprintf("listen: 127.0.0.1:%d\nmax_payload: 4096\n", port))
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	checkMaxPayload(t, p, url, 4096)

	// A file nats-server cannot apply changes nothing, and says why.
	writeFile(t, conf, fmt.Sprintf("listen: 127.0.0.1:%d\nmax_payload: {\n", port))
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	checkOutput(t, p, "configuration not reloaded")
	checkMaxPayload(t, p, url, 4096)

	if err := p.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	checkOutput(t, p, "signal ignored: nothing here to reopen a log")
	stopMain(t, p)
}

// TestBrokerSIGHUPWithoutConfig: without --config, SIGHUP reads the
// files of the flags again, and the flags' settings stay.
func TestBrokerSIGHUPWithoutConfig(t *testing.T) {
	port := freePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	p := startMain(t, "broker", "broker", "--port", fmt.Sprint(port), "--max-payload", "3000")
	checkMaxPayload(t, p, url, 3000)
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	checkOutput(t, p, "reloaded without --config")
	checkMaxPayload(t, p, url, 3000)
	stopMain(t, p)
}

// TestBrokerAuthSIGHUP: broker --auth reads its credentials again on
// SIGHUP, even with its own polling off.
func TestBrokerAuthSIGHUP(t *testing.T) {
	port := freePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	dir := filepath.Join(t.TempDir(), "auth")
	p := startMain(t, "broker", "broker", "--port", fmt.Sprint(port), "--auth", dir, "--auth-poll=-1s")
	dial := func(seed string) error {
		o, err := nats.NkeyOptionFromSeed(seed)
		if err != nil {
			return err
		}
		nc, err := nats.Connect(url, o, nats.NoReconnect(), quiet)
		if err == nil {
			nc.Close()
		}
		return err
	}
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if err := p.Alive(); err != nil {
			t.Fatal(err)
		}
		return dial(filepath.Join(dir, broker.ClientCredential))
	})
	bob, _, err := broker.AddClient(dir, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if err := dial(bob); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("bob before SIGHUP: %v; want %v", err, nats.ErrAuthorization)
	}
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if err := p.Alive(); err != nil {
			t.Fatal(err)
		}
		return dial(bob)
	})
	if err := dial(filepath.Join(dir, broker.ClientCredential)); err != nil {
		t.Errorf("the default client after SIGHUP: %v", err)
	}
	stopMain(t, p)
}

// TestBrokerLameDuck: on SIGUSR2, broker --dispatcher tells its clients
// it is in lame duck mode, answers the request its dispatcher holds,
// closes the clients and exits with status 0 within the lame duck
// duration.
func TestBrokerLameDuck(t *testing.T) {
	const duration, grace = 4 * time.Second, 2 * time.Second
	port := freePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	conf := filepath.Join(t.TempDir(), "nats.conf")
	writeFile(t, conf, fmt.Sprintf("listen: 127.0.0.1:%d\n", port))
	b := startMain(t, "broker", "broker", "--config", conf, "--dispatcher", "--log", filepath.Join(t.TempDir(), "lb.log"),
		"--lame-duck-duration", duration.String(), "--lame-duck-grace", grace.String())
	w := startMain(t, "worker", "worker", "--nats", url, "--connect-wait", "10s", "--id", "w-ld")

	told, closed := make(chan struct{}, 1), make(chan struct{})
	var cl *client.Client
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if err := b.Alive(); err != nil {
			t.Fatal(err)
		}
		var err error
		cl, err = client.Connect(client.Config{URL: url, Timeout: 10 * time.Second, Options: []nats.Option{
			nats.NoReconnect(), quiet,
			nats.LameDuckModeHandler(func(*nats.Conn) { told <- struct{}{} }),
			nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
		}})
		return err
	})
	defer cl.Close()
	addTwoAndThree(t, cl)

	// A request the dispatcher has forwarded when the signal comes.
	spy, err := nats.Connect(url, nats.NoReconnect(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer spy.Close()
	forwards, err := spy.SubscribeSync("calc.worker.w-ld")
	if err != nil || spy.Flush() != nil {
		t.Fatalf("subscribe: %v", err)
	}
	replies := make(chan error, 1)
	go func() {
		r, err := cl.Do(context.Background(), "sleep 500")
		if err == nil && (r.Worker != "w-ld" || r.Sends != 1) {
			err = fmt.Errorf("answered by %q after %d sends; want w-ld, 1", r.Worker, r.Sends)
		}
		replies <- err
	}()
	if _, err := forwards.NextMsg(10 * time.Second); err != nil {
		t.Fatalf("the request was not forwarded: %v", err)
	}
	if err := b.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	start := time.Now()

	select {
	case <-told:
	case <-time.After(10 * time.Second):
		t.Fatal("the client was not told of the lame duck mode")
	}
	select {
	case err := <-replies:
		if err != nil {
			t.Fatalf("the request in flight: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the request in flight was not answered")
	}
	select {
	case <-closed:
	case <-time.After(duration + 10*time.Second):
		t.Fatal("the client was not closed")
	}
	code, err := b.Wait(duration + 10*time.Second)
	if err != nil || code != 0 {
		t.Fatalf("broker after SIGUSR2: exit %d, %v; want 0 (output in %s)", code, err, b.Output())
	}
	if d := time.Since(start); d > duration+5*time.Second {
		t.Errorf("the broker took %v to leave; want about the lame duck duration, %v", d, duration)
	}
	// The dispatcher was done before the broker closed its clients.
	out, _ := os.ReadFile(b.Output())
	stopped, closing := strings.Index(string(out), "dispatcher stopped"), strings.Index(string(out), "Closing existing clients")
	if stopped < 0 || closing < 0 || stopped > closing {
		t.Errorf("the broker's output does not say the dispatcher stopped before the clients were closed:\n%s", out)
	}
	w.Stop(5 * time.Second)
}

// TestUpSIGHUP: SIGHUP does not end an up session: it goes on answering
// its standard input, and ends with status 0 at its end.
func TestUpSIGHUP(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// A pipe as a file, that the child reads itself: exec would wait for
	// a copy from another reader to end before it reports the exit.
	stdin, commands, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer commands.Close()
	p, err := supervise.Start(supervise.Config{
		Name: "up", Path: exe, Args: []string{"up", "--port=-1", "--log", filepath.Join(t.TempDir(), "lb.log")},
		Output: filepath.Join(t.TempDir(), "up.out"), Stdin: stdin,
		Env: append(supervise.Env(), runMainEnv+"=1"),
	})
	if err != nil {
		t.Fatal(err)
	}
	stdin.Close() // the child's now
	t.Cleanup(func() { stopChild(t, p) })
	checkOutput(t, p, "bilancia up: NATS at")
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// Without --auth there is nothing to reload: said, in the roles' format.
	checkOutput(t, p, `level=WARN msg="signal ignored: nothing here to reload" signal=hangup`)
	if _, err := io.WriteString(commands, "add 1000000 234567\n"); err != nil {
		t.Fatal(err)
	}
	checkOutput(t, p, "1234567")
	commands.Close()
	if code, err := p.Wait(30 * time.Second); err != nil || code != 0 {
		t.Fatalf("up after its input ended: exit %d, %v; want 0 (output in %s)", code, err, p.Output())
	}
}

// TestUpSIGTERMAnswersInFlight: SIGTERM to up with a request in flight
// prints its reply, which the dispatcher still sends, not "context
// canceled", and exits 0.
func TestUpSIGTERMAnswersInFlight(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	stdin, commands, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer commands.Close()
	p, err := supervise.Start(supervise.Config{
		Name: "up", Path: exe, Args: []string{"up", "--port=-1", "--no-dashboard", "--log", filepath.Join(t.TempDir(), "lb.log")},
		Output: filepath.Join(t.TempDir(), "up.out"), Stdin: stdin,
		Env: append(supervise.Env(), runMainEnv+"=1"),
	})
	if err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	t.Cleanup(func() { stopChild(t, p) })
	checkOutput(t, p, "bilancia up: NATS at")
	out, _ := os.ReadFile(p.Output())
	url := strings.Fields(strings.SplitN(string(out), "NATS at ", 2)[1])[0]
	url = strings.TrimSuffix(url, ",")
	nc, err := nats.Connect(url, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	seen, err := nc.SubscribeSync("calc.request")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(commands, "sleep 1500\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := seen.NextMsg(10 * time.Second); err != nil {
		t.Fatalf("the request was not sent: %v", err)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, err := p.Wait(30 * time.Second); err != nil || code != 0 {
		t.Fatalf("up after SIGTERM: exit %d, %v; want 0 (output in %s)", code, err, p.Output())
	}
	out, _ = os.ReadFile(p.Output())
	if !strings.Contains(string(out), "] sleep 1500 = w-") || strings.Contains(string(out), "context canceled") {
		t.Errorf("up's output after SIGTERM with sleep 1500 in flight:\n%s\nwant its reply", out)
	}
}
