package dispatcher

import (
	"net"
	"time"
)

// PacedDialer dials TCP connections whose reads come at most once per
// Every: what arrives in between is read in one go. It is for the
// connection that carries workers' heartbeats. With a large fleet they
// arrive one by one, each costing a wakeup, two read system calls and a
// wakeup of Go's system monitor, for news that is acted on at the scale
// of heartbeat intervals; read every Every, any number of workers cost
// one batch per Every instead (the fleet figures in BENCHMARKS.md).
//
// Use it with nats.SetCustomDialer; TLS, when the server asks for it, is
// layered on the paced connection by nats.go.
type PacedDialer struct {
	Every   time.Duration // 0 = 10ms
	Timeout time.Duration // the dial timeout; 0 = 2s, nats.go's default
}

// Dial implements nats.CustomDialer.
func (p PacedDialer) Dial(network, address string) (net.Conn, error) {
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	c, err := (&net.Dialer{Timeout: timeout}).Dial(network, address)
	if err != nil {
		return nil, err
	}
	every := p.Every
	if every <= 0 {
		every = 10 * time.Millisecond
	}
	return &pacedConn{Conn: c, every: every}, nil
}

// pacedConn waits, before a read, until Every has passed since the last
// one returned. A read after a quiet spell returns as soon as data
// arrives, so a lone message is not delayed; only a stream is batched.
// nats.go reads from one goroutine at a time.
type pacedConn struct {
	net.Conn
	every time.Duration
	last  time.Time
}

func (c *pacedConn) Read(b []byte) (int, error) {
	if wait := c.every - time.Since(c.last); wait > 0 {
		time.Sleep(wait)
	}
	n, err := c.Conn.Read(b)
	c.last = time.Now()
	return n, err
}
