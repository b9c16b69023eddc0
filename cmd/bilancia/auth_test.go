package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/bilancia/bilancia/broker"
	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/internal/testutil"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func testDispatcherFlags(t *testing.T) DispatcherFlags {
	return DispatcherFlags{
		Heartbeat: 100 * time.Millisecond, RequestTimeout: 5 * time.Second, AttemptTimeout: time.Second,
		MaxAttempts: 3, MaxInflight: 100, Strategy: "round-robin", EjectAfter: 5, EjectFor: 5 * time.Second,
		Log: filepath.Join(t.TempDir(), "loadbalancer.log"), LogRequests: true,
	}
}

// addTwoAndThree sends "add 2 3" until it is answered 5.
func addTwoAndThree(t *testing.T, cl *client.Client) {
	t.Helper()
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		r, err := cl.Do(context.Background(), "add 2 3")
		if err != nil {
			return err
		}
		if got := r.ResultString(); got != "5" {
			t.Fatalf("add 2 3 = %s; want 5", got)
		}
		return nil
	})
}

// TestAuthRoles runs the dispatcher and worker roles against a broker with
// --auth, each with its own --nkey, and clients with theirs: the default
// one and one added by bilancia auth add-client while the broker runs.
// The wrong credential, or none, is refused with a message that says so.
func TestAuthRoles(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := filepath.Join(t.TempDir(), "auth")
	// A pool's own credential, made before the broker starts: a reload
	// closes the connections still in their handshake. The worker takes
	// its ids from it.
	if err := (&AuthInitCmd{Dir: dir}).Run(); err != nil {
		t.Fatal(err)
	}
	if err := (&AuthAddWorkerCmd{ID: "w-auth", Replicas: 2, Dir: dir}).Run(); err != nil {
		t.Fatal(err)
	}
	b := brokertest.Start(t, broker.Config{Host: "127.0.0.1", Port: -1, AuthDir: dir, AuthPoll: 20 * time.Millisecond})
	defer b.Shutdown()
	nf := func(file string) NATSFlags {
		return NATSFlags{NATS: b.ClientURL(), Prefix: "calc", NKey: filepath.Join(dir, file), PingInterval: 5 * time.Second}
	}
	d := &DispatcherCmd{NATSFlags: nf(broker.DispatcherCredential), DispatcherFlags: testDispatcherFlags(t)}
	d.ID = "d-auth"
	w := &WorkerCmd{NATSFlags: nf(filepath.Join(broker.WorkersDir, "w-auth.nk")), Replicas: 1, Heartbeat: 100 * time.Millisecond,
		WorkerFlags: WorkerFlags{Concurrency: 4, MaxSleep: time.Second, MaxSpin: time.Second}}
	roles, stop := context.WithCancel(context.Background())
	defer stop()
	errs := make(chan error, 2)
	go func() { errs <- d.Run(&globals{ctx: roles}) }()
	go func() { errs <- w.Run(&globals{ctx: roles}) }()

	connect := func(file string) (*client.Client, error) {
		n := nf(file)
		cfg, err := (&ClientFlags{Timeout: 5 * time.Second, Retries: 3}).config(&n)
		if err != nil {
			return nil, err
		}
		return client.Connect(cfg)
	}
	cl, err := connect(broker.ClientCredential)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	addTwoAndThree(t, cl)
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		st, err := cl.Status(context.Background(), 0)
		if err != nil || len(st) != 1 || len(st[0].Workers) != 2 {
			return fmt.Errorf("status = %+v, %v; want d-auth listing 2 workers", st, err)
		}
		return nil
	})

	add := &AuthAddClientCmd{Name: "eve", Dir: dir}
	if err := add.Run(); err != nil {
		t.Fatal(err)
	}
	var eve *client.Client
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		var err error
		eve, err = connect(filepath.Join(broker.ClientsDir, "eve.nk"))
		return err
	})
	defer eve.Close()
	addTwoAndThree(t, eve)

	n := nf(broker.WorkerCredential)
	n.InboxPrefix = "_INBOX" // the dispatchers' and operators'
	cfg, err := (&ClientFlags{Timeout: 5 * time.Second, Retries: 3}).config(&n)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Connect(cfg); err == nil || !strings.Contains(err.Error(), "refuses replies") {
		t.Fatalf("a client with the worker credential: %v; want the broker refusing its inbox", err)
	}
	if _, err := client.Connect(client.Config{URL: b.ClientURL()}); err == nil || errors.Is(err, client.ErrNoServer) ||
		!strings.Contains(err.Error(), "refused") {
		t.Fatalf("a client without credentials: %v; want a refusal, not ErrNoServer", err)
	}
	none := NATSFlags{NATS: b.ClientURL()}
	if _, err := none.connect("bilancia-test", quietLog); err == nil || !strings.Contains(err.Error(), "refused") ||
		!strings.Contains(err.Error(), "--nkey") {
		t.Fatalf("connect without credentials: %v; want a refusal that names --nkey", err)
	}
	admin := nf(broker.AdminCredential)
	if nc, err := admin.connect("bilancia-test", quietLog); err != nil {
		t.Fatalf("connect with the admin credential: %v", err)
	} else {
		nc.Close()
	}

	cl.Close()
	eve.Close()
	stop()
	waitRoles(t, errs, 2)
}

// TestBrokerAuthDispatcher: broker --auth --dispatcher runs its dispatcher
// in process with the dispatcher credential.
func TestBrokerAuthDispatcher(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := filepath.Join(t.TempDir(), "auth")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	c := &BrokerCmd{Host: "127.0.0.1", Port: port, Auth: dir, AuthPoll: time.Second, Dispatcher: true, Prefix: "calc",
		DispatcherFlags: testDispatcherFlags(t)}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- c.Run(&globals{ctx: ctx}) }()

	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	nf := func(file string) NATSFlags {
		return NATSFlags{NATS: url, Prefix: "calc", NKey: filepath.Join(dir, file), ConnectWait: 10 * time.Second}
	}
	var cl *client.Client
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		n := nf(broker.ClientCredential)
		cfg, err := (&ClientFlags{Timeout: 5 * time.Second}).config(&n)
		if err == nil {
			cl, err = client.Connect(cfg)
		}
		return err
	})
	defer cl.Close()
	wf := nf(broker.WorkerCredential)
	ws, err := (&WorkerFlags{Concurrency: 2, MaxSleep: time.Second, MaxSpin: time.Second}).startWorkers(workerPlan{
		ids: []string{"w-in"}, prefix: "calc", heartbeat: 100 * time.Millisecond, log: quietLog,
		connect: func() (*nats.Conn, error) { return wf.connect("bilancia-worker", quietLog) },
	})
	if err != nil {
		t.Fatal(err)
	}
	addTwoAndThree(t, cl)
	cl.Close()
	wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ws.stop(wctx, nil); err != nil {
		t.Fatal(err)
	}
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("broker --auth --dispatcher ended with %v; want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("broker did not stop")
	}
}

// TestBrokerRefusesOpenListen: beyond loopback without authentication
// the broker does not start, and says what to do.
func TestBrokerRefusesOpenListen(t *testing.T) {
	err := (&BrokerCmd{Host: "0.0.0.0", Port: -1, Prefix: "calc"}).Run(&globals{ctx: context.Background()})
	if err == nil || !strings.Contains(err.Error(), "--insecure") || !strings.Contains(err.Error(), "--auth") {
		t.Fatalf("broker --host 0.0.0.0 = %v; want a refusal naming --auth and --insecure", err)
	}
}

// TestAuthTLS: a role reaches a broker serving TLS with a certificate of a
// throwaway CA when given --tls-ca, and is refused without it.
func TestAuthTLS(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	f := brokertest.NewTLS(t)
	dir := filepath.Join(t.TempDir(), "auth")
	b := brokertest.Start(t, broker.Config{Host: "127.0.0.1", Port: -1, AuthDir: dir, TLSCert: f.ServerCert, TLSKey: f.ServerKey})
	defer b.Shutdown()
	nf := NATSFlags{NATS: b.ClientURL(), NKey: filepath.Join(dir, broker.AdminCredential)}
	if _, err := nf.connect("bilancia-test", quietLog); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("connect without --tls-ca: %v; want a certificate error", err)
	}
	nf.TLSCA = f.CA
	nc, err := nf.connect("bilancia-test", quietLog)
	if err != nil {
		t.Fatalf("connect with --tls-ca: %v", err)
	}
	nc.Close()
}

// TestWorkerIDsOfCredential: a worker with its own credential takes its
// --id and --replicas from it, and refuses ids it does not act for.
func TestWorkerIDsOfCredential(t *testing.T) {
	dir := t.TempDir()
	if err := broker.EnsureCredentials(dir); err != nil {
		t.Fatal(err)
	}
	one, err := broker.AddWorker(dir, "w1", 1)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := broker.AddWorker(dir, "p", 3)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, nkey, id string
		replicas       int
		wantID         string
		wantReplicas   int
		ok             bool
	}{
		{"one, from the credential", one, "", 1, "w1", 1, true},
		{"one, named", one, "w1", 1, "w1", 1, true},
		{"one, another id", one, "w2", 1, "", 0, false},
		{"one, as a pool", one, "w1", 2, "", 0, false},
		{"pool, from the credential", pool, "", 1, "p", 3, true},
		{"pool, fewer", pool, "p", 2, "p", 2, true},
		{"pool, more", pool, "p", 4, "", 0, false},
		{"fleet, any id", filepath.Join(dir, broker.WorkerCredential), "x", 5, "x", 5, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &WorkerCmd{NATSFlags: NATSFlags{NKey: tt.nkey}, ID: tt.id, Replicas: tt.replicas}
			err := c.idsOfCredential()
			if (err == nil) != tt.ok {
				t.Fatalf("idsOfCredential() = %v; want ok %v", err, tt.ok)
			}
			if tt.ok && (c.ID != tt.wantID || c.Replicas != tt.wantReplicas) {
				t.Fatalf("--id %q --replicas %d; want %q %d", c.ID, c.Replicas, tt.wantID, tt.wantReplicas)
			}
		})
	}
}
