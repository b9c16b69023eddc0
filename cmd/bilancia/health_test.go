package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/bilancia/bilancia/broker"
	"github.com/bilancia/bilancia/broker/brokertest"
)

// TestHealthBroker: without flags, health broker asks the broker over NATS
// at the default URL, as the other checks do, instead of a monitoring port
// that is off by default; --url still asks /healthz.
func TestHealthBroker(t *testing.T) {
	cli, _, _, err := parse(t, "health", "broker")
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	t.Setenv("XDG_CONFIG_HOME", t.TempDir()) // no nats context selected
	if got := cli.Health.Broker; got.URL != "" || got.resolve() != nil || got.NATS != "nats://127.0.0.1:4222" {
		t.Fatalf("defaults: --url %q, --nats %q; want none and nats://127.0.0.1:4222", got.URL, got.NATS)
	}

	b := brokertest.Start(t, broker.Config{Host: "127.0.0.1", Port: -1, HTTPPort: -1})
	g := &globals{ctx: context.Background()}
	c := cli.Health.Broker
	c.NATS = b.ClientURL()
	if err := c.Run(g); err != nil {
		t.Fatalf("health broker --nats %s: %v", c.NATS, err)
	}
	c.URL = b.MonitorURL() + "/healthz"
	if err := c.Run(g); err != nil {
		t.Fatalf("health broker --url %s: %v", c.URL, err)
	}

	// Nobody on a port just freed: unhealthy, exit status 1.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	free := l.Addr().String()
	l.Close()
	c = cli.Health.Broker
	c.NATS = fmt.Sprintf("nats://%s", free)
	var ee *exitError
	if err := c.Run(g); !errors.As(err, &ee) || ee.code != 1 {
		t.Fatalf("health broker --nats %s with nobody there: %v; want unhealthy, exit 1", c.NATS, err)
	}
}

// TestNoDispatcherSaidAlike: with no dispatcher, status, ctl and health
// dispatcher say so at once, in the same words with the same code;
// health's --timeout of a minute is not waited out.
func TestNoDispatcherSaidAlike(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	for _, args := range [][]string{
		{"status"},
		{"ctl", "drain", "w-1"},
		{"health", "dispatcher", "--timeout", "1m"},
	} {
		_, errOut, code := runMain(t, append(args, "--nats", url)...)
		if code != 1 || !strings.Contains(errOut, "503 no dispatcher answers on calc.") {
			t.Errorf("bilancia %v with no dispatcher: exit %d, %q; want 1 and 503 no dispatcher answers", args, code, errOut)
		}
	}
	// With --id, the check waits for that dispatcher to start.
	_, errOut, code := runMain(t, "health", "dispatcher", "--id", "d-9", "--timeout", "500ms", "--nats", url)
	if code != 1 || !strings.Contains(errOut, "dispatcher d-9 did not answer within 500ms") {
		t.Errorf("health dispatcher --id d-9 with no dispatcher: exit %d, %q; want 1 after the timeout", code, errOut)
	}
}
