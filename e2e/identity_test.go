package e2e

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bilancia/bilancia/internal/supervise"
	"github.com/bilancia/bilancia/internal/testutil"
)

// started waits until p has printed want (its start line).
func (e *env) started(p *proc, want string) {
	e.t.Helper()
	err := supervise.Poll(context.Background(), p.name, 20*time.Second, 10*time.Millisecond, func() error {
		if !strings.Contains(p.output(), want) {
			return errors.New("not started yet")
		}
		return nil
	}, p.sp)
	if err != nil {
		e.t.Fatal(err)
	}
}

// TestDuplicateWorkerID runs worker processes on a broker with --auth,
// each with the worker credential: a second worker with a live id exits
// non-zero within seconds, naming the id; so does one whose --replicas
// would take a live id; after the first has stopped, its id starts again.
func TestDuplicateWorkerID(t *testing.T) {
	e := newEnv(t)
	auth := filepath.Join(e.dir, "auth")
	b := e.broker("broker", "--auth", auth)
	nkey := filepath.Join(auth, "worker.nk")
	first := e.worker(b.URL, "x", "--nkey", nkey)
	e.started(first, "worker started")
	fleet := e.worker(b.URL, "y", "--nkey", nkey, "--replicas", "3")
	e.started(fleet, "workers started")

	for _, tc := range []struct {
		args  []string
		names []string
	}{
		{[]string{"--id", "x"}, []string{`"x"`}},
		{[]string{"--id", "y-1"}, []string{`"y-1"`}},
		{[]string{"--id", "y", "--replicas", "2"}, []string{`"y-0"`, `"y-1"`}},
	} {
		began := time.Now()
		args := append([]string{"worker", "--nats", b.URL, "--nkey", nkey, "--connect-wait=10s"}, tc.args...)
		code, _, errOut := e.run(20*time.Second, nil, args...)
		took := time.Since(began)
		if code == 0 {
			t.Fatalf("%s: exit 0; want a refusal", strings.Join(tc.args, " "))
		}
		for _, name := range tc.names {
			if !strings.Contains(errOut, "a live worker already has id") || !strings.Contains(errOut, name) {
				t.Errorf("%s: stderr %q; want the live id %s named", strings.Join(tc.args, " "), errOut, name)
			}
		}
		if took > 10*time.Second {
			t.Errorf("%s: refused after %v; want within seconds", strings.Join(tc.args, " "), took)
		}
	}
	if first.exited() || fleet.exited() {
		t.Fatalf("a refused start stopped a live worker:\n%s\n%s", tail(first.output(), 5), tail(fleet.output(), 5))
	}

	if err := first.sp.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, err := first.wait(30 * time.Second); err != nil || code != 0 {
		t.Fatalf("first worker x: exit %d, %v", code, err)
	}
	e.started(e.worker(b.URL, "x", "--nkey", nkey), "worker started")
}

// TestEnvironmentPerRole runs a worker and a dispatcher from one
// environment, as a deployment's: BILANCIA_WORKER_ID names the worker and
// not the dispatcher, which takes a default id of 64 random bits; the
// connection's BILANCIA_NATS reaches both.
func TestEnvironmentPerRole(t *testing.T) {
	e := newEnv(t)
	b := e.broker("broker")
	env := append(supervise.Env(), "BILANCIA_NATS="+b.URL, "BILANCIA_WORKER_ID=w-env",
		"BILANCIA_WORKER_HEARTBEAT=200ms", "BILANCIA_DISPATCHER_LOG="+filepath.Join(e.dir, "d.log"))
	for _, role := range []string{"worker", "dispatcher"} {
		e.startEnv(role, env, role)
	}
	defaultID := regexp.MustCompile(`^d-[0-9a-f]{16}$`)
	testutil.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		st, err := e.status(b.URL)
		if err != nil {
			return err
		}
		if err := upWorkers(st, 1, "w-env"); err != nil {
			return err
		}
		if id := st[0].Dispatcher; !defaultID.MatchString(id) {
			t.Fatalf("the dispatcher's id is %q; want a default one, d- and 16 hex digits", id)
		}
		if n := len(st[0].Workers); n != 1 {
			return fmt.Errorf("%d workers; want w-env alone", n)
		}
		return nil
	})
}

// startEnv is start with an environment of the test's own.
func (e *env) startEnv(name string, environ []string, args ...string) *proc {
	e.t.Helper()
	return e.launch(supervise.Config{Name: name, Args: args, Env: environ})
}
