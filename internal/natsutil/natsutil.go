// Package natsutil holds the NATS plumbing every role shares: connection
// options, telling the broker's "no responders" status, draining a
// subscription on the way out, and the retry budget.
package natsutil

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
)

// Reconnect pacing shared by every long-lived connection: retry quickly,
// with jitter so that a fleet does not reconnect in lockstep.
const (
	ReconnectWait   = 250 * time.Millisecond
	ReconnectJitter = 100 * time.Millisecond
)

// Options returns the options of a long-lived connection named name: it
// reconnects forever, so that a role outlives broker restarts and moves to
// another cluster node on its own. A non-nil log hears disconnects,
// reconnects and asynchronous errors.
func Options(name string, log *slog.Logger) []nats.Option {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(ReconnectWait),
		nats.ReconnectJitter(ReconnectJitter, ReconnectJitter),
	}
	if log == nil {
		return opts
	}
	return append(opts,
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err != nil { // nil: we closed it ourselves
				log.Warn("nats disconnected", "error", err.Error())
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(nc *nats.Conn, s *nats.Subscription, err error) {
			subj := ""
			if s != nil {
				subj = s.Subject
			}
			log.Error("nats error", "subject", subj, "error", err.Error())
		}),
	)
}

// The broker's status header and its "no responders" code, as nats.go
// reads them (it does not export them).
const (
	statusHdr    = "Status"
	noResponders = "503"
)

// IsNoResponders tells the broker's "no responders" status message: nobody
// was subscribed to the subject a request was sent to. nats.go turns it
// into nats.ErrNoResponders only for its own request calls; code that
// reads replies from a subscription of its own sees the message.
func IsNoResponders(m *nats.Msg) bool {
	return len(m.Data) == 0 && m.Header != nil && m.Header.Get(statusHdr) == noResponders
}

// Drain drains sub, delivering what the broker already sent it, and waits
// until it is closed or ctx ends (then it unsubscribes). On a connection
// that is not connected it unsubscribes at once: nothing more can arrive,
// and a drain would wait for a reconnect that may never come.
func Drain(ctx context.Context, sub *nats.Subscription, nc *nats.Conn) {
	if !sub.IsValid() {
		return
	}
	if !nc.IsConnected() {
		_ = sub.Unsubscribe()
		return
	}
	closed := sub.StatusChanged(nats.SubscriptionClosed)
	if sub.Drain() != nil {
		_ = sub.Unsubscribe()
		return
	}
	select {
	case <-closed:
	case <-ctx.Done():
		_ = sub.Unsubscribe()
	}
}

// OnReconnect calls fn, from a goroutine of its own, each time nc comes
// back after it was lost, until stop is called; stop waits for a call in
// progress. A status listener, so that the connection's handlers stay its
// owner's.
func OnReconnect(nc *nats.Conn, fn func()) (stop func()) {
	ch := nc.StatusChanged(nats.CONNECTED)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range ch {
			fn()
		}
	}()
	return func() {
		nc.RemoveStatusListener(ch)
		<-done
	}
}
