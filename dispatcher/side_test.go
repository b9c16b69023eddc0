package dispatcher

import (
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker/brokertest"
)

// TestSideSubscriptions: what anyone may flood (hand-overs, status
// requests, hellos) is read on SideConn, not on the request connection,
// and bounded in messages as well as bytes.
func TestSideSubscriptions(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	dial := dialer(t, url)
	main, side := dial(), dial()
	d, err := New(Config{Conn: main, SideConn: side, ID: "d-side"})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Shutdown(t.Context()) })
	for name, s := range map[string]subscription{"hand-overs": d.subs.orphans, "status": d.subs.status, "hellos": d.subs.connect, "goodbyes": d.subs.disconnect} {
		if s.nc != side {
			t.Errorf("%s on the request connection; want SideConn", name)
		}
		msgs, bytes, err := s.PendingLimits()
		if err != nil || msgs != sideBacklogMsgs || bytes != sideBacklog {
			t.Errorf("%s: pending limits %d messages, %d bytes (%v); want %d, %d", name, msgs, bytes, err, sideBacklogMsgs, sideBacklog)
		}
	}
	if d.subs.replies.nc != main || d.subs.requests.nc != main {
		t.Error("requests or replies not on Conn")
	}
}

// dialer returns a function that connects to url, each connection closed
// when the test ends.
func dialer(t testing.TB, url string) func() *nats.Conn {
	return func() *nats.Conn {
		t.Helper()
		nc, err := nats.Connect(url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
}
