package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/internal/natsutil"
	"github.com/bilancia/bilancia/wire"
)

// CtlCmd changes the dispatchers at run time, as HAProxy's runtime API.
type CtlCmd struct {
	Drain  CtlDrainCmd  `cmd:"" help:"Take a worker out of every dispatcher's rotation; it finishes what it holds and keeps heartbeating."`
	Resume CtlResumeCmd `cmd:"" help:"Put a drained worker back in every dispatcher's rotation."`
	List   CtlListCmd   `cmd:"" help:"List the drained workers of every dispatcher."`
}

// ctlFlags are every ctl command's.
type ctlFlags struct {
	NATSFlags
	JSON bool          `help:"Print each dispatcher's raw JSON reply."`
	Wait time.Duration `default:"200ms" help:"How long to wait for more dispatchers after the first answers."`
}

// idFlags are the flags of the commands that name a worker.
type idFlags struct {
	AllowUnknown bool `help:"Exit 0 even when no dispatcher has heard from the worker (the change applies when it appears); without it, a typo exits 1."`
}

// CtlDrainCmd drains a worker on every dispatcher.
type CtlDrainCmd struct {
	ctlFlags
	idFlags
	ID string `arg:"" help:"The worker's id."`
}

func (c *CtlDrainCmd) Run(g *globals) error {
	return c.run(g.ctx, os.Stdout, wire.CtlDrain, c.ID, c.AllowUnknown)
}

// CtlResumeCmd resumes a worker on every dispatcher.
type CtlResumeCmd struct {
	ctlFlags
	idFlags
	ID string `arg:"" help:"The worker's id."`
}

func (c *CtlResumeCmd) Run(g *globals) error {
	return c.run(g.ctx, os.Stdout, wire.CtlResume, c.ID, c.AllowUnknown)
}

// CtlListCmd lists every dispatcher's drained workers.
type CtlListCmd struct {
	ctlFlags
}

func (c *CtlListCmd) Run(g *globals) error {
	return c.run(g.ctx, os.Stdout, wire.CtlList, "", true)
}

// run sends verb for worker id to every dispatcher, prints their replies
// and fails unless at least one dispatcher acknowledged and none refused,
// and, unless allowUnknown, one of them knows the worker.
func (c *ctlFlags) run(ctx context.Context, out io.Writer, verb, id string, allowUnknown bool) error {
	if verb != wire.CtlList && !wire.ValidID(id) {
		return &exitError{2, fmt.Sprintf("%q is not a worker id (one subject token: no dot, wildcard or space).", id)}
	}
	refused := make(chan error, 1)
	nc, err := c.connect("bilancia-ctl", nil, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case refused <- err:
		default:
		}
	}))
	if err != nil {
		return &exitError{1, err.Error()}
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	replies, err := gatherCtl(ctx, nc, wire.Subjects{Prefix: c.Prefix}, verb, id, c.Wait, refused)
	if err != nil {
		return &exitError{1, err.Error()}
	}
	if c.JSON {
		for _, m := range replies {
			fmt.Fprintln(out, string(m.Data))
		}
	}
	return reportCtl(out, os.Stderr, verb, id, replies, !c.JSON, allowUnknown)
}

// gatherCtl sends a control request and gathers the dispatchers'
// replies: until none came for wait after the first, ctx ends, the
// broker says no dispatcher listens, or it refuses the request.
func gatherCtl(ctx context.Context, nc *nats.Conn, subj wire.Subjects, verb, id string, wait time.Duration, refused <-chan error) ([]*nats.Msg, error) {
	inbox := nc.NewInbox()
	ch := make(chan *nats.Msg, 64)
	sub, err := nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	var data []byte
	if verb != wire.CtlList {
		data, _ = json.Marshal(wire.CtlRequest{Worker: id})
	}
	if err := nc.PublishRequest(subj.Ctl(verb), inbox, data); err != nil {
		return nil, err
	}
	// A round trip, so that a refusal of the publish arrives before the wait.
	if err := nc.FlushWithContext(ctx); err != nil {
		return nil, err
	}
	var out []*nats.Msg
	var quiet <-chan time.Time
	for {
		select {
		case m := <-ch:
			if natsutil.IsNoResponders(m) {
				// As status says it, code and all.
				return nil, wire.NewError(wire.CodeUnavailable, "no dispatcher answers on "+subj.Ctl(verb))
			}
			out = append(out, m)
			if quiet == nil {
				quiet = time.After(wait)
			}
		case err := <-refused:
			if strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
				return nil, fmt.Errorf("the broker refused the request (%v): with broker --auth, ctl needs the dispatcher or admin credential", err)
			}
			return nil, err
		case <-quiet:
			return out, nil
		case <-ctx.Done():
			if len(out) > 0 {
				return out, nil
			}
			return nil, wire.NewError(wire.CodeDeadline, "no dispatcher answered the "+verb+" request")
		}
	}
}

// reportCtl prints what each dispatcher answered (table: as a table) and
// returns an error when one refused the request, or when none knows the
// worker unless allowUnknown.
func reportCtl(out, warn io.Writer, verb, id string, replies []*nats.Msg, table, allowUnknown bool) error {
	var failed []string
	var oks []wire.CtlReply
	for _, m := range replies {
		if e := wire.ErrorFromMsg(m); e != nil {
			failed = append(failed, e.Message)
			continue
		}
		var r wire.CtlReply
		if err := json.Unmarshal(m.Data, &r); err != nil || r.Dispatcher == "" {
			failed = append(failed, "a reply that is not a dispatcher's")
			continue
		}
		oks = append(oks, r)
	}
	slices.SortFunc(oks, func(a, b wire.CtlReply) int { return strings.Compare(a.Dispatcher, b.Dispatcher) })
	known, changed := 0, 0
	for _, r := range oks {
		if r.Known {
			known++
		}
		if r.Changed {
			changed++
		}
		if !table {
			continue
		}
		switch verb {
		case wire.CtlList:
			drained := strings.Join(r.Drained, " ")
			if drained == "" {
				drained = "(none drained)"
			}
			fmt.Fprintf(out, "%-18s %s\n", r.Dispatcher, drained)
		default:
			state := "not known yet"
			if r.Known {
				state = "worker " + r.State
			}
			what := "drained"
			if verb == wire.CtlResume {
				what = "resumed"
			}
			if !r.Changed {
				what = "already " + what
			}
			fmt.Fprintf(out, "%-18s %s %s (%s)\n", r.Dispatcher, id, what, state)
		}
	}
	if table {
		fmt.Fprintf(out, "%d dispatcher(s) acknowledged\n", len(oks))
	}
	if len(failed) > 0 {
		return &exitError{1, strings.Join(failed, "; ")}
	}
	if verb != wire.CtlList && len(oks) > 0 && known == 0 {
		msg := fmt.Sprintf("no dispatcher has heard from worker %s; the change applies when it appears", id)
		// Resuming a worker drained before it appeared undoes a typo.
		if !allowUnknown && (verb != wire.CtlResume || changed == 0) {
			// A typo must not pass a script.
			return &exitError{1, msg + " (--allow-unknown: exit 0 for a worker yet to come)"}
		}
		fmt.Fprintln(warn, "bilancia: "+msg)
	}
	return nil
}
