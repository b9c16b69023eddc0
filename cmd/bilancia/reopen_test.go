//go:build unix

package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/internal/testutil"
)

// TestLogReopensOnSIGUSR1: a dispatcher whose loadbalancer.log was renamed
// away, as a log rotation does, writes on into a new file at its path
// once sent SIGUSR1.
func TestLogReopensOnSIGUSR1(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	b := brokertest.Run(t)
	defer b.Shutdown()
	f := testDispatcherFlags(t)
	f.ID = "d-rotate"
	r, err := f.startDispatcher(&NATSFlags{NATS: b.ClientURL(), Prefix: "calc", PingInterval: 5 * time.Second}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.stop(context.Background())
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if b, _ := os.ReadFile(f.Log); !strings.Contains(string(b), "dispatcher started") {
			return fmt.Errorf("no start line in %s yet", f.Log)
		}
		return nil
	})
	if err := os.Rename(f.Log, f.Log+".1"); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		b, _ := os.ReadFile(f.Log)
		if !strings.Contains(string(b), "log reopened") {
			return fmt.Errorf("%s holds %q; want a line saying the log was reopened", f.Log, b)
		}
		return nil
	})
	if old, _ := os.ReadFile(f.Log + ".1"); !strings.Contains(string(old), "dispatcher started") {
		t.Errorf("the renamed file lost its lines: %q", old)
	}
}
