package repl

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/bilancia/bilancia/calcworker/calc"
	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/wire"
)

const (
	// replyWidth is where the latency column starts, so that short replies
	// line up: "[w-3f2a] add 2 3 = 5" is followed by spaces up to it.
	replyWidth = 38
	// maxShown bounds how much of a command is echoed: a 1 MiB expr
	// should not flood the terminal.
	maxShown = 80
)

// formatReply is one output line:
//
//	[w-3f2a] add 2 3 = 5                  (0.4 ms)
//	[error 400] div 1 0: division by zero (0.3 ms)
//
// with " sends=2" appended when the client had to send more than once.
func formatReply(cmd string, r *client.Result, lat time.Duration, err error) string {
	return palette{}.reply(cmd, r, lat, err)
}

// reply is formatReply in p's colours: the worker and latency dim, the
// result green, an error red.
func (p palette) reply(cmd string, r *client.Result, lat time.Duration, err error) string {
	return p.replyCut(cmd, r, lat, err, true)
}

// replyCut is reply with the result cut to a line, or whole.
func (p palette) replyCut(cmd string, r *client.Result, lat time.Duration, err error, cut bool) string {
	var text, shown string // shown: text with colours
	if err != nil {
		text = formatError(shorten(cmd), err)
		shown = p.err(text)
	} else {
		w := "[" + safe(r.Worker) + "]"
		if r.Worker == "" {
			w = "[?]"
		}
		head, result := w+" "+shorten(cmd)+" = ", safe(r.ResultString())
		if cut {
			result = shorten(r.ResultString())
		}
		text = head + result
		shown = p.dim(w) + strings.TrimPrefix(head, w) + p.ok(result)
	}
	if pad := replyWidth - utf8.RuneCountInString(text); pad > 0 {
		shown += strings.Repeat(" ", pad)
	} else {
		shown += " "
	}
	shown += p.dim("(" + fmtLatency(lat) + ")")
	if r != nil && r.Sends > 1 {
		shown += fmt.Sprintf(" sends=%d", r.Sends)
	}
	return shown
}

// formatError is "[error 400] div 1 0: division by zero", or "[error] ..."
// when the failure has no service error code (client closed, send failed).
func formatError(what string, err error) string {
	var we *wire.Error
	if errors.As(err, &we) {
		return fmt.Sprintf("[error %d] %s: %s", we.Code, what, safe(we.Message))
	}
	return fmt.Sprintf("[error] %s: %s", what, safe(err.Error()))
}

// shorten cuts s to maxShown runes and escapes it for the terminal.
func shorten(s string) string {
	if utf8.RuneCountInString(s) > maxShown {
		r := []rune(s)
		s = string(r[:maxShown-1]) + "…"
	}
	return safe(s)
}

// fmtLatency is "0.4 ms" below a second, "1.25 s" from there.
func fmtLatency(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// fmtAge is how long ago t was: "0.4s ago", "3m12s ago", "never".
func fmtAge(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := max(now.Sub(t), 0) // clocks of two hosts may disagree
	if d < time.Minute {
		return fmt.Sprintf("%.1fs ago", d.Seconds())
	}
	return d.Round(time.Second).String() + " ago"
}

// PrintStatus writes each dispatcher's worker table, dispatchers sorted by
// name, workers in the dispatcher's order:
//
//	dispatcher d-91ab (v0.1.0, round-robin, up 3m12s): served 1000, failed 0, in-flight 0
//	ID      STATE                LAST HEARTBEAT  FORWARDED  IN-FLIGHT  ERRORS  EJECTIONS
//	w-3f2a  up                   0.4s ago        501        0          0       0
//	w-81c0  down (no heartbeat)  3.2s ago        499        0          0       0
//
// The counts are this dispatcher's, as the header's, and live: FORWARDED
// counts its sends to the worker (retries too), not the worker's own
// count, which its heartbeats bring a beat late and which covers every
// dispatcher. A reason shows for states other than up; the age column
// says how long a worker has been without a heartbeat.
func PrintStatus(w io.Writer, st []wire.Status, now time.Time) {
	if len(st) == 0 {
		fmt.Fprintln(w, "no dispatcher answered")
		return
	}
	st = append([]wire.Status(nil), st...)
	sort.SliceStable(st, func(i, j int) bool { return st[i].Dispatcher < st[j].Dispatcher })
	for i, d := range st {
		if i > 0 {
			fmt.Fprintln(w)
		}
		var about []string
		if d.Version != "" {
			about = append(about, "v"+safe(strings.TrimPrefix(d.Version, "v")))
		}
		if d.Strategy != "" {
			about = append(about, safe(d.Strategy))
		}
		if d.Subject != "" && !strings.HasSuffix(d.Subject, ".request") {
			about = append(about, "on "+safe(d.Subject)) // beside the usual dispatchers
		}
		if !d.StartedAt.IsZero() {
			about = append(about, "up "+max(now.Sub(d.StartedAt), 0).Round(time.Second).String())
		}
		head := "dispatcher " + safe(d.Dispatcher)
		if len(about) > 0 {
			head += " (" + strings.Join(about, ", ") + ")"
		}
		fmt.Fprintf(w, "%s: served %d, failed %d, in-flight %d\n", head, d.Served, d.Failed, d.Inflight)
		if unseen := drainedUnseen(d); len(unseen) > 0 {
			fmt.Fprintf(w, "  drained, not heard yet: %s\n", strings.Join(unseen, " "))
		}
		if len(d.Workers) == 0 {
			fmt.Fprintln(w, "  no workers")
			continue
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATE\tLAST HEARTBEAT\tFORWARDED\tIN-FLIGHT\tERRORS\tEJECTIONS")
		for _, ws := range d.Workers {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\n", safe(ws.ID), stateText(ws), fmtAge(ws.LastHeartbeat, now),
				ws.Forwarded, ws.Inflight, ws.Errors, ws.Ejections)
		}
		_ = tw.Flush() // w's errors are the caller's to see
	}
}

// stateText is a worker's state as its row shows it: "up, silent",
// "up, drained", "down (no heartbeat)". The reason of a state other than
// up says why; a time inside it, from when the state changed, is left to
// the age column, which stays current.
func stateText(ws wire.WorkerStatus) string {
	state := safe(ws.State)
	if ws.Silent {
		state += ", silent" // holds requests, answers none: sent nothing new
	}
	if ws.Drained {
		state += ", drained" // by an operator: out of rotation
	}
	reason := ws.Reason
	if strings.HasPrefix(reason, "no heartbeat for ") {
		reason = "no heartbeat"
	}
	if reason != "" && ws.State != wire.StateUp {
		state += " (" + safe(reason) + ")"
	}
	return state
}

// drainedUnseen are the workers drained on d that its rows do not show.
func drainedUnseen(d wire.Status) []string {
	if len(d.Drained) == 0 || d.Truncated {
		return nil
	}
	rows := make(map[string]bool, len(d.Workers))
	for _, w := range d.Workers {
		rows[w.ID] = true
	}
	var out []string
	for _, id := range d.Drained {
		if !rows[id] {
			out = append(out, safe(id))
		}
	}
	return out
}

// helpText lists the REPL commands and the operations calc knows.
func helpText() string {
	var b strings.Builder
	b.WriteString(`Type a calculation to send it, e.g. "add 2 3" or {"op":"add","args":[2,3]}.
Commands:
  random N [-q]   N random requests at once, then a summary (-q: summary only)
  status          show every dispatcher's worker table
  last            the last result, whole (a long one is cut to a line)
  help            this text
  exit, quit      leave (Ctrl-D too), after the replies still on their way
Lines starting with # are ignored.
By default a request waits 10s for its reply beyond the time it asks for
(sleep N, spin N); the client's --timeout sets one deadline for every request.

`)
	// Two lines per op, so that the table fits 80 columns.
	ops := calc.Ops()
	names := make([]string, len(ops))
	wName, wArgs := 0, 0
	for i, op := range ops {
		names[i] = op.Name
		if len(op.Aliases) > 0 {
			names[i] += " (" + strings.Join(op.Aliases, ", ") + ")"
		}
		wName = max(wName, utf8.RuneCountInString(names[i]))
		wArgs = max(wArgs, utf8.RuneCountInString(op.Args))
	}
	b.WriteString("Operations (names are case-insensitive):\n")
	for i, op := range ops {
		fmt.Fprintf(&b, "  %-*s  %-*s  e.g. %s\n      %s\n", wName, names[i], wArgs, op.Args, op.Example, op.Help)
	}
	return b.String()
}
