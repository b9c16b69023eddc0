package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker"
	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/calcworker"
	"github.com/bilancia/bilancia/dispatcher"
	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

// runMain runs bilancia with args as a process of its own and returns
// its standard output and error and its exit code.
func runMain(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("bilancia %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

// startRoles runs a dispatcher and a worker in this process, each on a
// connection made with nf (and its credential file, if any).
func startRoles(t *testing.T, dnf, wnf *NATSFlags) *dispatcher.Dispatcher {
	t.Helper()
	dc, err := dnf.connect("test-dispatcher", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dc.Close)
	d, err := dispatcher.New(dispatcher.Config{Conn: dc, ID: "d-ctl", Logger: quietLog, Heartbeat: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Shutdown(context.Background()) })
	wc, err := wnf.connect("test-worker", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wc.Close)
	w, err := calcworker.New(calcworker.Config{Conn: wc, ID: "w-ctl", Heartbeat: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Shutdown(context.Background()) })
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if d.LiveWorkers() != 1 {
			return errors.New("w-ctl is not up at d-ctl")
		}
		return nil
	})
	return d
}

// TestCtlCommand: bilancia ctl drain, list and resume reach the
// dispatcher and say how many acknowledged; bad input changes nothing.
func TestCtlCommand(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	nf := &NATSFlags{NATS: url}
	d := startRoles(t, nf, nf)

	out, errOut, code := runMain(t, "ctl", "drain", "w-ctl", "--nats", url)
	if code != 0 || !strings.Contains(out, "d-ctl") || !strings.Contains(out, "w-ctl drained (worker up)") ||
		!strings.Contains(out, "1 dispatcher(s) acknowledged") {
		t.Fatalf("ctl drain: exit %d, %q, %q", code, out, errOut)
	}
	if got := d.Drained(); !slices.Equal(got, []string{"w-ctl"}) {
		t.Fatalf("Drained() = %v; want [w-ctl]", got)
	}
	if out, _, code := runMain(t, "ctl", "list", "--nats", url); code != 0 || !strings.Contains(out, "w-ctl") {
		t.Fatalf("ctl list: exit %d, %q", code, out)
	}
	if out, _, code := runMain(t, "status", "--nats", url); code != 0 || !strings.Contains(out, "up, drained") {
		t.Fatalf("status with w-ctl drained: exit %d, %q", code, out)
	}
	if _, errOut, code := runMain(t, "ctl", "drain", "w.ctl", "--nats", url); code != 2 || !strings.Contains(errOut, "not a worker id") {
		t.Fatalf("ctl drain w.ctl: exit %d, %q; want 2 and why", code, errOut)
	}
	// A typo fails a script; --allow-unknown drains a worker yet to come.
	if _, errOut, code := runMain(t, "ctl", "drain", "w-99", "--nats", url); code != 1 || !strings.Contains(errOut, "no dispatcher has heard from worker w-99") {
		t.Fatalf("ctl drain w-99: exit %d, %q; want 1 and why", code, errOut)
	}
	if _, errOut, code := runMain(t, "ctl", "resume", "w-99", "--nats", url); code != 0 {
		t.Fatalf("ctl resume w-99 (the typo undone): exit %d, %q; want 0", code, errOut)
	}
	if _, errOut, code := runMain(t, "ctl", "resume", "w-99", "--nats", url); code != 1 {
		t.Fatalf("ctl resume w-99 again: exit %d, %q; want 1", code, errOut)
	}
	if _, errOut, code := runMain(t, "ctl", "drain", "w-nobody", "--allow-unknown", "--nats", url); code != 0 || !strings.Contains(errOut, "no dispatcher has heard from worker w-nobody") {
		t.Fatalf("ctl drain w-nobody --allow-unknown: exit %d, %q; want 0 and a warning", code, errOut)
	}
	if out, errOut, code := runMain(t, "ctl", "resume", "w-ctl", "--nats", url); code != 0 || !strings.Contains(out, "w-ctl resumed") {
		t.Fatalf("ctl resume: exit %d, %q, %q", code, out, errOut)
	}
	if got := d.Drained(); !slices.Equal(got, []string{"w-nobody"}) {
		t.Fatalf("Drained() = %v; want [w-nobody]", got)
	}
}

// TestCtlAuth: with broker --auth, the client and worker credentials
// may not drain (the broker refuses, and the command says so), the
// dispatcher and admin ones may; admins discover every dispatcher and
// worker over micro, clients cannot.
func TestCtlAuth(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "auth")
	b := brokertest.Start(t, broker.Config{Host: "127.0.0.1", Port: -1, AuthDir: dir})
	url := b.ClientURL()
	cred := func(f string) *NATSFlags { return &NATSFlags{NATS: url, NKey: filepath.Join(dir, f)} }
	d := startRoles(t, cred(broker.DispatcherCredential), cred(broker.WorkerCredential))

	for _, f := range []string{broker.ClientCredential, broker.WorkerCredential} {
		_, errOut, code := runMain(t, "ctl", "drain", "w-ctl", "--nats", url, "--nkey", filepath.Join(dir, f))
		if code != 1 || !strings.Contains(errOut, "refused") {
			t.Fatalf("ctl drain with %s: exit %d, %q; want 1 and the refusal", f, code, errOut)
		}
	}
	if got := d.Drained(); len(got) != 0 {
		t.Fatalf("Drained() = %v after refused drains", got)
	}
	for _, f := range []string{broker.AdminCredential, broker.DispatcherCredential} {
		out, errOut, code := runMain(t, "ctl", "drain", "w-ctl", "--nats", url, "--nkey", filepath.Join(dir, f))
		if code != 0 || !strings.Contains(out, "1 dispatcher(s) acknowledged") {
			t.Fatalf("ctl drain with %s: exit %d, %q, %q", f, code, out, errOut)
		}
	}
	if got := d.Drained(); !slices.Equal(got, []string{"w-ctl"}) {
		t.Fatalf("Drained() = %v; want [w-ctl]", got)
	}

	admin, err := cred(broker.AdminCredential).connect("test-admin", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for _, name := range []string{wire.DispatcherService, wire.WorkerService} {
		if _, err := admin.Request("$SRV.PING."+name, nil, 5*time.Second); err != nil {
			t.Fatalf("admin's $SRV.PING.%s: %v", name, err)
		}
	}
	refused := make(chan error, 1)
	cl, err := cred(broker.ClientCredential).connect("test-client", nil, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case refused <- err:
		default:
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Request("$SRV.PING", nil, 500*time.Millisecond); err == nil {
		t.Fatal("a client's $SRV.PING was answered")
	}
	select {
	case err := <-refused:
		if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Fatalf("client's $SRV.PING: %v; want a permissions violation", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the broker did not refuse a client's $SRV.PING")
	}
}
