package broker

import (
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// LameDuck puts the broker in nats-server's lame duck mode, as nats-server
// does on SIGUSR2: it stops accepting clients, tells the connected ones
// (nats.go calls their LameDuckModeHandler) so that they move to another
// server of the cluster, waits LameDuckGrace, then closes them one by one
// over the rest of LameDuckDuration and shuts down. It returns at once;
// WaitForShutdown tells the end. Calling it again, after Shutdown or
// before Start does nothing; Shutdown during it ends it at once.
func (b *Broker) LameDuck() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.started || b.closed || b.lameDuck {
		return
	}
	b.lameDuck = true
	srv := b.srv
	b.watch.Add(1)
	go func() {
		defer b.watch.Done()
		srv.LameDuckShutdown()
	}()
}

// LameDuckGrace is how long LameDuck leaves the clients connected before
// it closes the first: the time to finish what is in flight.
func (b *Broker) LameDuckGrace() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if g := b.srvOpts.LameDuckGracePeriod; g > 0 {
		return g
	}
	return server.DEFAULT_LAME_DUCK_GRACE_PERIOD
}
