package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/bilancia/bilancia/internal/testutil"
)

// A broker that requires authentication cannot host a dispatcher, which
// has no credentials: it says so, and stops instead of running without it.
func TestBrokerDispatcherWithAuthentication(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, []byte("authorization { token: s3cret }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &BrokerCmd{
		Host: "127.0.0.1", Port: -1, Config: conf, Dispatcher: true, Prefix: "calc",
		DispatcherFlags: DispatcherFlags{Log: filepath.Join(dir, "lb.log"), Strategy: "round-robin"},
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := c.Run(&globals{ctx: ctx})
	if err == nil || !strings.Contains(err.Error(), "authentication") {
		t.Fatalf("Run = %v; want an error that names authentication", err)
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestBrokerConfigPrecedence: broker --config listens where the file
// says unless a flag, on the command line or in the environment, says
// otherwise.
func TestBrokerConfigPrecedence(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	filePort, flagPort := freePort(t), freePort(t)
	conf := filepath.Join(t.TempDir(), "nats.conf")
	for _, tc := range []struct {
		name, conf string
		args       []string
		env        bool // flagPort in the environment variable of --port
		want       int
	}{
		{"port and host", fmt.Sprintf("host: 127.0.0.1\nport: %d\n", filePort), nil, false, filePort},
		{"listen", fmt.Sprintf("listen: 127.0.0.1:%d\n", filePort), nil, false, filePort},
		{"--port over port", fmt.Sprintf("host: 127.0.0.1\nport: %d\n", filePort), []string{"--port", strconv.Itoa(flagPort)}, false, flagPort},
		{"--port over listen", fmt.Sprintf("listen: 127.0.0.1:%d\n", filePort), []string{"--port", strconv.Itoa(flagPort)}, false, flagPort},
		{"environment over port", fmt.Sprintf("host: 127.0.0.1\nport: %d\n", filePort), nil, true, flagPort},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(conf, []byte(tc.conf), 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.env {
				t.Setenv(portEnv(t), strconv.Itoa(flagPort))
			}
			cli, _, _, err := parse(t, append([]string{"broker", "--config", conf}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			ctx, stop := context.WithCancel(context.Background())
			defer stop()
			done := make(chan error, 1)
			go func() { done <- cli.Broker.Run(&globals{ctx: ctx}) }()
			testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
				nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", tc.want), nats.NoReconnect())
				if err != nil {
					return err
				}
				nc.Close()
				return nil
			})
			other := filePort + flagPort - tc.want
			if nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", other), nats.NoReconnect()); err == nil {
				nc.Close()
				t.Errorf("the broker listens on %d too", other)
			}
			stop()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run = %v; want nil", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the broker did not stop")
			}
		})
	}
}

// portEnv is the environment variable of broker --port, as kong reads it.
func portEnv(t *testing.T) string {
	t.Helper()
	parser, err := newParser(&CLI{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range parser.Model.Children {
		if n.Name != "broker" {
			continue
		}
		for _, f := range n.Flags {
			if f.Name == "port" && len(f.Envs) > 0 {
				return f.Envs[0]
			}
		}
	}
	t.Fatal("broker --port reads no environment variable")
	return ""
}
