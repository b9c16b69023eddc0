package flight

import (
	"time"
	"unsafe"
)

// Replies handed over: a worker whose dispatcher is gone hands a long
// job's reply to every dispatcher (calcworker/orphan.go). The one that
// holds the request answers with it (Core.orphan); the others keep it a
// while for the client's resend, which they then answer without
// forwarding it: the job ran once.

const (
	// DefaultOrphanKeep is how long a reply handed over waits for its
	// client's resend, which comes after the client's silence or once it
	// has reconnected to another broker.
	DefaultOrphanKeep = 10 * time.Second
	// DefaultOrphanBytes and DefaultOrphanMax bound the replies kept,
	// each counted at what it costs; the oldest go first.
	DefaultOrphanBytes = 16 << 20
	DefaultOrphanMax   = 16 << 10
)

// kept is a reply handed over, kept for its request's resend.
type kept struct {
	id      string
	client  string // the reply subject of the request it answers; "" any
	payload any
	worker  string
	code    int
	size    int // its Event.Size and keptOverhead
	at      int64
}

// keptOverhead is what a reply kept costs the core beyond what the shell
// counts in its Event.Size: the kept, its slots in byID and fifo.
const keptOverhead = int(unsafe.Sizeof(kept{})) + 64 + 8

// orphanStore holds the replies kept, by request id, bounded in age,
// bytes and number. Its timer, due, lets go of them when they expire,
// whether or not others arrive.
type orphanStore struct {
	keep          int64
	maxBytes, max int
	byID          map[string]*kept
	fifo          []*kept // in arrival order; taken ones stay until they reach the front
	bytes         int
	due           timer // the oldest's expiry
}

// put keeps k, first letting go of those expired at now and, past the
// bounds, the oldest.
func (s *orphanStore) put(k *kept, now int64, n *Counts) {
	if s.byID == nil {
		s.byID = make(map[string]*kept)
	}
	k.size += keptOverhead
	if prev := s.byID[k.id]; prev != nil { // the same reply twice: keep the later
		s.drop(prev)
	}
	s.byID[k.id] = k
	if len(s.fifo) >= 2*s.max {
		s.compact()
	}
	s.fifo = append(s.fifo, k)
	s.bytes += k.size
	s.expire(now, n)
}

// expire lets go of those older than keep at now and, while over the
// bounds, the oldest.
func (s *orphanStore) expire(now int64, n *Counts) {
	for len(s.fifo) > 0 {
		k := s.fifo[0]
		if s.byID[k.id] == k {
			if now-k.at < s.keep && s.bytes <= s.maxBytes && len(s.byID) <= s.max {
				break
			}
			s.drop(k)
			n.OrphansExpired++
		}
		s.fifo[0] = nil
		s.fifo = s.fifo[1:]
	}
	if len(s.fifo) == 0 {
		s.fifo = nil
	}
}

// compact drops from fifo the replies no longer kept: the same id handed
// over again and again leaves one behind each time.
func (s *orphanStore) compact() {
	live := make([]*kept, 0, len(s.byID)+1)
	for _, k := range s.fifo {
		if s.byID[k.id] == k {
			live = append(live, k)
		}
	}
	s.fifo = live
}

// drop forgets k, and lets go of its payload at once: its place in fifo
// may outlive it until it reaches the front.
func (s *orphanStore) drop(k *kept) {
	delete(s.byID, k.id)
	s.bytes -= k.size
	k.payload = nil
}

// take returns and forgets the reply kept for r's id, if one is for a
// request to r's reply subject (or names none) and it has not expired at
// now.
func (s *orphanStore) take(r *Request, now int64, n *Counts) *kept {
	k := s.byID[r.ID]
	if k == nil {
		return nil
	}
	if k.client != "" && k.client != r.Reply {
		n.OrphansMismatched++ // another client's: its own resend may still come
		return nil
	}
	taken := *k
	s.drop(k)
	if now-taken.at >= s.keep {
		n.OrphansExpired++
		return nil
	}
	return &taken
}

// names tells whether the reply kept for r's id names r's reply subject.
func (s *orphanStore) names(r *Request) bool {
	k := s.byID[r.ID]
	return k != nil && k.client == r.Reply
}

// rearm arms due for the oldest reply kept, or disarms it with none.
func (s *orphanStore) rearm(ts *schedule) {
	if len(s.fifo) == 0 {
		ts.disarm(&s.due)
		return
	}
	s.due.at = s.fifo[0].at + s.keep
	ts.arm(&s.due)
}
