package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
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
