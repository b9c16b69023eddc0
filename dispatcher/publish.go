package dispatcher

import (
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/wire"
)

// eventQueueLen bounds the events waiting to be published: a flood of
// transitions beyond it is dropped and counted, never waited for.
const eventQueueLen = 1024

// eventQueue publishes events (wire.Event) on their own goroutine, which
// also encodes them: emit only enqueues, or drops when the queue is full,
// so that the hot path, where workers go down and get ejected, never
// waits on the events.
type eventQueue struct {
	nc      *nats.Conn
	ch      chan queuedEvent
	done    chan struct{}
	wg      sync.WaitGroup
	dropped atomic.Uint64
	once    sync.Once
}

type queuedEvent struct {
	subject string
	ev      wire.Event
}

func (q *eventQueue) init(nc *nats.Conn) {
	q.nc, q.ch, q.done = nc, make(chan queuedEvent, eventQueueLen), make(chan struct{})
}

func (q *eventQueue) start() {
	q.wg.Add(1)
	go q.run()
}

// emit queues ev for subject, or drops it when the queue is full.
func (q *eventQueue) emit(subject string, ev wire.Event) {
	select {
	case q.ch <- queuedEvent{subject, ev}:
	default:
		q.dropped.Add(1)
	}
}

func (q *eventQueue) run() {
	defer q.wg.Done()
	for {
		select {
		case e := <-q.ch:
			q.publish(e)
		case <-q.done:
			for {
				select {
				case e := <-q.ch:
					q.publish(e)
				default:
					return
				}
			}
		}
	}
}

func (q *eventQueue) publish(e queuedEvent) {
	b, err := json.Marshal(e.ev)
	if err == nil {
		_ = q.nc.Publish(e.subject, b) // best effort, as documented
	}
}

// stop publishes what is queued and stops; events emitted later are not
// published. Safe to call more than once; a queue never started stops
// at once.
func (q *eventQueue) stop() {
	q.once.Do(func() { close(q.done) })
	q.wg.Wait()
}

// workerEvent publishes the membership change c.
func (d *Dispatcher) workerEvent(c change) {
	ev := wire.Event{Kind: c.To, Time: time.Now(), Dispatcher: d.cfg.ID, Worker: c.ID, From: c.From, Reason: c.Reason}
	if !c.Until.IsZero() {
		until := c.Until
		ev.Until = &until
	}
	d.events.emit(d.subj.WorkerEvent(c.ID, c.To), ev)
}

// drainEvent publishes an operator's drain or resume of worker id.
func (d *Dispatcher) drainEvent(id string, res drainResult, on bool) {
	kind := wire.EventResumed
	if on {
		kind = wire.EventDrained
	}
	d.events.emit(d.subj.WorkerEvent(id, kind),
		wire.Event{Kind: kind, Time: time.Now(), Dispatcher: d.cfg.ID, Worker: id, State: res.state, Reason: "operator"})
}

// dispatcherEvent publishes the dispatcher's own start or stop.
func (d *Dispatcher) dispatcherEvent(kind string) {
	d.events.emit(d.subj.DispatcherEvent(d.cfg.ID, kind),
		wire.Event{Kind: kind, Time: time.Now(), Dispatcher: d.cfg.ID, Version: wire.Version})
}
