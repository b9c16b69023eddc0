package calcworker

import (
	"sync"

	"github.com/nats-io/nats.go"
)

// Shared carries the messages of many workers of one process, on one
// connection, through one channel to one pool of compute goroutines; it is
// how `worker --replicas` simulates a large fleet. With goroutines of their
// own, each of a thousand workers would wake two goroutines for every
// request it gets, where a single busy worker takes a batch of requests
// per wakeup: the simulator, not the fleet, would be what is measured.
//
// The pool bounds the computations of all its workers together. A worker's
// requests still queued in the channel when it has stopped are answered
// 503, which a dispatcher takes as "try the next worker"; if the channel
// is full, nats.go drops the message as a slow consumer's.
type Shared struct {
	concurrency int
	ch          chan *nats.Msg
	pool        sync.WaitGroup

	mu   sync.RWMutex
	subs map[*nats.Subscription]sharedSub
}

// sharedSub is whose a subscription is, and whether it is the one for
// discover requests or for claims of the id (told apart here, not by
// comparing subjects per message).
type sharedSub struct {
	w               *Worker
	discover, claim bool
	handle          nats.MsgHandler // subscribeFunc's: the messages go to it
}

// NewShared starts concurrency compute goroutines (0 = 16) behind a
// channel of buffer messages (0 = 65536).
func NewShared(concurrency, buffer int) *Shared {
	if concurrency <= 0 {
		concurrency = 16
	}
	if buffer <= 0 {
		buffer = 1 << 16
	}
	s := &Shared{concurrency: concurrency, ch: make(chan *nats.Msg, buffer), subs: map[*nats.Subscription]sharedSub{}}
	for range concurrency {
		s.pool.Add(1)
		go s.run()
	}
	return s
}

// subscribe subscribes w to subj (in queue, if set) through the channel.
func (s *Shared) subscribe(w *Worker, subj, queue string) (*nats.Subscription, error) {
	// Registered under the lock before a message can arrive: the pool
	// looks its worker up by subscription.
	s.mu.Lock()
	defer s.mu.Unlock()
	var sub *nats.Subscription
	var err error
	if queue != "" {
		sub, err = w.nc.ChanQueueSubscribe(subj, queue, s.ch)
	} else {
		sub, err = w.nc.ChanSubscribe(subj, s.ch)
	}
	if err != nil {
		return nil, err
	}
	s.subs[sub] = sharedSub{w: w, discover: subj == w.subj.Discover(), claim: subj == w.subj.Claim(w.cfg.ID)}
	return sub, nil
}

// subscribeFunc subscribes w to subj through the channel, its messages
// given to handle.
func (s *Shared) subscribeFunc(w *Worker, subj string, handle nats.MsgHandler) (*nats.Subscription, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub, err := w.nc.ChanSubscribe(subj, s.ch)
	if err != nil {
		return nil, err
	}
	s.subs[sub] = sharedSub{w: w, handle: handle}
	return sub, nil
}

func (s *Shared) run() {
	defer s.pool.Done()
	for m := range s.ch {
		s.mu.RLock()
		ss, ok := s.subs[m.Sub]
		s.mu.RUnlock()
		switch {
		case !ok:
		case ss.handle != nil:
			ss.handle(m)
		case ss.discover:
			ss.w.heartbeat()
		case ss.claim:
			ss.w.answerClaim(m)
		default:
			if j := ss.w.take(m); j != nil {
				ss.w.serve(j)
			}
		}
	}
}

// Close stops the pool once the channel is empty. Call it after every
// worker's Shutdown, and after their connection is closed or drained, so
// that no more messages arrive.
func (s *Shared) Close() {
	close(s.ch)
	s.pool.Wait()
}
