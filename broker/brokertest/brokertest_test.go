package brokertest

import (
	"testing"

	"github.com/nats-io/nats.go"
)

func TestRun(t *testing.T) {
	b := Run(t)
	nc, err := nats.Connect(b.ClientURL())
	if err != nil {
		t.Fatalf("connect to Run's broker: %v", err)
	}
	defer nc.Close()
	if err := nc.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
}
