package flight

import "time"

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
	// DefaultOrphanBytes bounds the replies kept; the oldest go first.
	DefaultOrphanBytes = 16 << 20
)

// kept is a reply handed over, kept for its request's resend.
type kept struct {
	id      string
	payload any
	worker  string
	code    int
	size    int
	at      int64
}

// orphanStore holds the replies kept, by request id, bounded in age and
// bytes.
type orphanStore struct {
	keep     int64
	maxBytes int
	byID     map[string]*kept
	fifo     []*kept // in arrival order; taken ones stay until they reach the front
	bytes    int
}

// put keeps k, first letting go of those expired at now and, past the
// bound, the oldest.
func (s *orphanStore) put(k *kept, now int64, n *Counts) {
	if s.byID == nil {
		s.byID = make(map[string]*kept)
	}
	if prev := s.byID[k.id]; prev != nil { // the same reply twice: keep the later
		s.drop(prev)
	}
	s.byID[k.id] = k
	s.fifo = append(s.fifo, k)
	s.bytes += k.size
	s.expire(now, n)
}

// expire lets go of those older than keep at now and, while over the
// bound, the oldest.
func (s *orphanStore) expire(now int64, n *Counts) {
	for len(s.fifo) > 0 {
		k := s.fifo[0]
		if s.byID[k.id] == k {
			if now-k.at < s.keep && s.bytes <= s.maxBytes {
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

func (s *orphanStore) drop(k *kept) {
	delete(s.byID, k.id)
	s.bytes -= k.size
}

// take returns and forgets the reply kept for r's id, if one is and it
// has not expired at now.
func (s *orphanStore) take(r *Request, now int64) *kept {
	k := s.byID[r.ID]
	if k == nil {
		return nil
	}
	s.drop(k)
	if now-k.at >= s.keep {
		return nil
	}
	return k
}
