package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/bilancia/bilancia/internal/natsutil"
	"github.com/bilancia/bilancia/wire"
)

// Do sends command and waits for its reply, retrying on "no responders"
// and on attempts left unanswered, within ctx's deadline (or cfg.Timeout).
// A service error comes back as *wire.Error; a request that gets no reply
// in time comes back as a *wire.Error with code 504.
func (c *Client) Do(ctx context.Context, command string) (*Result, error) {
	return c.DoBytes(ctx, []byte(command))
}

// DoBytes is Do for a payload already in bytes.
func (c *Client) DoBytes(ctx context.Context, payload []byte) (*Result, error) {
	start := time.Now()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = start.Add(c.timeout(payload))
	}
	id := uuid.NewString()
	token := nuid.Next()
	cl := &call{ch: make(chan *nats.Msg, 1)}

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.pending[token] = cl
	reconnected := c.reconnected
	c.mu.Unlock()
	c.inflight.Add(1)
	c.stats.requests.Add(1)
	retrying := false // counted in c.retrying
	defer func() {
		c.mu.Lock()
		delete(c.pending, token)
		c.mu.Unlock()
		c.inflight.Add(-1)
		if retrying {
			c.retrying.Add(-1)
		}
	}()

	// With progress messages, a send is repeated only after silence
	// without a sign of life from the dispatcher; without, after
	// attemptWait, doubling.
	progress := c.cfg.ProgressSilence > 0
	silence := c.cfg.ProgressSilence
	lastSend := start
	send := func() error {
		m := nats.NewMsg(c.reqSubj)
		m.Reply = c.inbox + token
		m.Data = payload
		m.Header.Set(wire.HdrRequestID, id)
		m.Header.Set(wire.HdrClient, c.cfg.Name)
		m.Header.Set(wire.HdrTimeout, strconv.FormatInt(time.Until(deadline).Milliseconds(), 10))
		if progress {
			m.Header[wire.HdrProgress] = progressValue
		}
		return c.nc.PublishMsg(m)
	}
	if err := send(); err != nil {
		return nil, c.sendErr(err)
	}
	sends := 1
	attemptWait := c.cfg.AttemptTimeout
	if progress {
		attemptWait = silence
	}
	backoff := 5 * time.Millisecond
	// backingOff: the last answer was "no responders", and the next send
	// ends the backoff. noDispatcher: no dispatcher took the request, so
	// running out of time is a 503, not a 504.
	backingOff, noDispatcher := false, false
	// kicked: the connection came back since the last send; the next send
	// goes at once, silence or not.
	kicked := false
	// One timer serves both the deadline and the next send.
	nextSend := start.Add(attemptWait)
	timer := time.NewTimer(attemptWait)
	defer timer.Stop()
	rearm := func(now time.Time) { timer.Reset(min(nextSend.Sub(now), deadline.Sub(now))) }
	rearm(start)

	for {
		select {
		case m := <-cl.ch:
			if natsutil.IsNoResponders(m) {
				// No dispatcher listens right now (restarting, or a
				// reconnect in progress): back off and send again,
				// unless none ever answered (none is running).
				backingOff, noDispatcher = true, true
				now := time.Now()
				if !c.served.Load() && now.Sub(start) >= c.cfg.NoDispatcherWait {
					return nil, c.timeoutErr(true, deadline.Sub(start), sends)
				}
				nextSend = now.Add(jitter(backoff))
				backoff = min(backoff*2, 500*time.Millisecond)
				rearm(now)
				continue
			}
			return c.result(m, id, sends, start)
		case now := <-timer.C:
			if !now.Before(deadline) {
				return nil, c.timeoutErr(noDispatcher, deadline.Sub(start), sends)
			}
			if now.Before(nextSend) {
				rearm(now)
				continue
			}
			if progress && !backingOff && !kicked {
				// Silent since the last send or progress message?
				last := max(lastSend.UnixNano(), cl.heard.Load())
				if quiet := time.Unix(0, last).Add(c.silence()); now.Before(quiet) {
					nextSend = quiet
					rearm(now)
					continue
				}
			}
			// A request no dispatcher has ever said it holds may have
			// gone where nobody answers (a route or broker cut off):
			// it is sent again after each silence until its deadline.
			// Once held, MaxAttempts bounds the sends (1: no resend
			// at all).
			if !backingOff && sends >= c.cfg.MaxAttempts && (!progress || c.cfg.MaxAttempts == 1 || cl.heard.Load() != 0) {
				nextSend = deadline // no more sends: wait for a reply
				rearm(now)
				continue
			}
			if !retrying {
				if !c.budget.Allows(c.inflight.Load(), c.retrying.Load()) {
					c.stats.denied.Add(1)
					nextSend = now.Add(attemptWait)
					rearm(now)
					continue
				}
				retrying = true
				c.retrying.Add(1)
			}
			if err := send(); err != nil {
				return nil, c.sendErr(err)
			}
			c.stats.retries.Add(1)
			sends++
			lastSend, kicked = now, false
			if backingOff {
				backingOff = false
			} else if !progress {
				attemptWait *= 2
			}
			nextSend = now.Add(attemptWait)
			rearm(now)
		case <-reconnected:
			// Lost and back, perhaps on another broker: what was on its
			// way may be lost, and the dispatcher with the broker.
			c.mu.Lock()
			reconnected = c.reconnected
			c.mu.Unlock()
			kicked = true
			now := time.Now()
			nextSend = now
			rearm(now)
		case <-c.done:
			return nil, ErrClosed
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, c.timeoutErr(noDispatcher, deadline.Sub(start), sends)
			}
			return nil, ctx.Err()
		}
	}
}

// timeoutErr is the error of a request that got no reply within limit:
// 503 when no dispatcher listened, else the client's 504.
func (c *Client) timeoutErr(noDispatcher bool, limit time.Duration, sends int) error {
	if noDispatcher {
		return wire.NewError(wire.CodeUnavailable, "no dispatcher is listening on "+c.reqSubj)
	}
	return wire.DeadlineError(wire.DeadlineClient, limit, sends)
}

func (c *Client) sendErr(err error) error {
	if errors.Is(err, nats.ErrConnectionClosed) {
		return ErrClosed
	}
	if errors.Is(err, nats.ErrMaxPayload) {
		return wire.NewError(wire.CodeTooLarge, "request larger than the server's max payload")
	}
	return fmt.Errorf("client: send: %w", err)
}

func (c *Client) result(m *nats.Msg, id string, sends int, start time.Time) (*Result, error) {
	r := &Result{ID: id, Sends: sends, Latency: time.Since(start)}
	if m.Header != nil {
		r.Worker = m.Header.Get(wire.HdrWorker)
		r.Dispatcher = m.Header.Get(wire.HdrDispatcher)
		r.Attempts, _ = strconv.Atoi(m.Header.Get(wire.HdrAttempts))
	}
	if e := wire.ErrorFromMsg(m); e != nil {
		return r, e
	}
	if err := json.Unmarshal(m.Data, &r.Reply); err != nil {
		return r, wire.NewError(wire.CodeInternal, "reply is not valid JSON: "+err.Error())
	}
	if r.Reply.Error != nil {
		return r, r.Reply.Error
	}
	if r.Worker == "" {
		r.Worker = r.Reply.Worker
	}
	return r, nil
}

// progressValue is Calc-Progress's value on a request; shared, since
// nats.go only reads it.
var progressValue = []string{"1"}

func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}
