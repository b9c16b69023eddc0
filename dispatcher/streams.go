package dispatcher

import (
	"time"

	"github.com/bilancia/bilancia/wire"
)

// Nothing on a bus without authentication proves that a heartbeat on
// <prefix>.heartbeat.<id> is the worker's own: anyone may publish there.
// What a dispatcher can make sure of is that one forged heartbeat does
// little, and not for long. A worker's heartbeats come from one process,
// numbered by seq since its started_at: a stream. The rules:
//
//   - seq orders a stream's heartbeats only over a short window: a lower
//     seq is taken for one overtaken by a newer heartbeat, and ignored,
//     only while the last heartbeat taken from that stream is younger
//     than reorderWindow. A forged seq of 2^64-1 hides the worker's own
//     heartbeats for that window at most; the first one after it is taken
//     and starts the count again.
//   - a process never comes back from draining: an "up" from a stream
//     after its "draining" proves one of the two was not the worker's;
//     the worker goes back up and the contradiction is logged.
//   - two streams (two started_at) whose heartbeats interleave are two
//     live processes claiming one id: logged. Both serve its subject
//     (NATS gives a request to every subscriber, the first reply wins), so
//     the worker stays in rotation while either says up: a draining from
//     one does not take it out while the other is up and heard.
//
// A forger who repeats its heartbeats every interval keeps its effect;
// only permissions on the heartbeat subjects stop that (docs/auth.md).

// stream is one process's heartbeats as last taken.
type stream struct {
	startedAt time.Time
	seq       uint64
	at        time.Time // when its last heartbeat was taken; zero: none yet
	state     string    // the state its last heartbeat gave
}

// notice is something about a heartbeat worth a (rate-limited) warning.
type notice int

const (
	noticeNone          notice = iota
	noticeStale                // ignored: a lower seq within the reorder window
	noticeConflict             // two live processes claim the id
	noticeContradiction        // up after draining, from the same process
	noticeTableFull            // a new id refused: the table is full
)

// streamsOf is a member's last two streams, the current one first.
type streamsOf [2]stream

// take decides whether hb, arriving at now, is taken, and records it when
// it is. membership.mu is held on entry and on exit.
func (s *streamsOf) take(now time.Time, hb wire.Heartbeat, window, deadAfter time.Duration) (bool, notice) {
	cur := &s[0]
	n := noticeNone
	switch {
	case cur.at.IsZero() || hb.StartedAt.Equal(cur.startedAt):
		if !cur.at.IsZero() && hb.Seq != 0 && hb.Seq < cur.seq && now.Sub(cur.at) < window {
			return false, noticeStale
		}
		if cur.state == wire.StateDraining && hb.State != wire.StateDraining {
			n = noticeContradiction
		}
	default:
		other := s[1]
		if !other.at.IsZero() && hb.StartedAt.Equal(other.startedAt) {
			if hb.Seq != 0 && hb.Seq < other.seq && now.Sub(other.at) < window {
				return false, noticeStale
			}
			if now.Sub(cur.at) < deadAfter {
				n = noticeConflict // back to a process while another is alive
			}
		}
		s[1] = *cur
	}
	*cur = stream{startedAt: hb.StartedAt, seq: hb.Seq, at: now, state: hb.State}
	return true, n
}

// otherUp tells whether the previous stream is another process still
// heard, within deadAfter of now, and up.
func (s *streamsOf) otherUp(now time.Time, deadAfter time.Duration) bool {
	o := s[1]
	return !o.at.IsZero() && !o.startedAt.Equal(s[0].startedAt) && o.state != wire.StateDraining &&
		now.Sub(o.at) < deadAfter
}
