package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/bilancia/bilancia/client/resend"
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
		deadline = start.Add(c.cfg.Timeout)
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

	// When to send again and when to give up: the resend core.
	progress := c.cfg.ProgressSilence > 0
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
	call, act := resend.Start(c.policy, start.UnixNano(), deadline.UnixNano())
	if err := send(); err != nil {
		return nil, c.sendErr(err)
	}
	timer := time.NewTimer(time.Until(time.Unix(0, act.Wake)))
	defer timer.Stop()
	for {
		select {
		case m := <-cl.ch:
			if natsutil.IsNoResponders(m) {
				act = call.NoResponders(time.Now().UnixNano())
				break
			}
			return c.result(m, id, call.Sends(), start)
		case now := <-timer.C:
			call.Progress(cl.heard.Load())
			act = call.Timer(now.UnixNano(), c.silence(), call.Retrying() || c.budget.Allows(c.inflight.Load(), c.retrying.Load()))
			switch act.Done {
			case resend.OutcomeDeadline:
				return nil, c.timeoutErr(false, start, call.Sends())
			case resend.OutcomeNoDispatcher:
				return nil, c.timeoutErr(true, start, call.Sends())
			}
			if act.Denied {
				c.stats.denied.Add(1)
			}
			if act.Counted {
				retrying = true
				c.retrying.Add(1)
			}
			if act.Send {
				if err := send(); err != nil {
					return nil, c.sendErr(err)
				}
				c.stats.retries.Add(1)
			}
		case <-reconnected:
			c.mu.Lock()
			reconnected = c.reconnected
			c.mu.Unlock()
			act = call.Reconnected(time.Now().UnixNano())
		case <-c.done:
			return nil, ErrClosed
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, c.timeoutErr(call.NoDispatcher(), start, call.Sends())
			}
			return nil, ctx.Err()
		}
		timer.Reset(time.Until(time.Unix(0, act.Wake)))
	}
}

func (c *Client) timeoutErr(noDispatcher bool, start time.Time, sends int) error {
	if noDispatcher {
		return wire.NewError(wire.CodeUnavailable, "no dispatcher is listening on "+c.reqSubj)
	}
	return wire.NewError(wire.CodeDeadline,
		fmt.Sprintf("no reply within %v after %d send(s)", time.Since(start).Round(time.Millisecond), sends))
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
