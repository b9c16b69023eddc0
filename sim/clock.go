package sim

import (
	"container/heap"
	"time"
)

// Time is simulated time since the run began.
type Time = time.Duration

// task is one thing due at a time. Tasks due at the same time run in the
// order they were scheduled (seq), so that no map order or heap detail
// decides anything.
type task struct {
	at   Time
	seq  uint64
	fn   func()
	idx  int
	dead bool
}

type taskHeap []*task

func (h taskHeap) Len() int { return len(h) }
func (h taskHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h taskHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *taskHeap) Push(x any) {
	t := x.(*task)
	t.idx = len(*h)
	*h = append(*h, t)
}
func (h *taskHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.idx = -1
	return t
}

// clock is the simulated clock and its queue of tasks.
type clock struct {
	now   Time
	seq   uint64
	queue taskHeap
	steps int
}

// at schedules fn at t (now, if t is past) and returns its task, which
// cancel stops.
func (c *clock) at(t Time, fn func()) *task {
	if t < c.now {
		t = c.now
	}
	c.seq++
	tk := &task{at: t, seq: c.seq, fn: fn}
	heap.Push(&c.queue, tk)
	return tk
}

// after schedules fn d from now.
func (c *clock) after(d Time, fn func()) *task { return c.at(c.now+d, fn) }

// cancel stops tk if it has not run; a nil tk is fine.
func cancel(tk *task) {
	if tk != nil {
		tk.dead = true
	}
}

// step runs the next task due no later than until; it tells whether one ran.
func (c *clock) step(until Time) bool {
	for len(c.queue) > 0 {
		tk := c.queue[0]
		if tk.at > until {
			return false
		}
		heap.Pop(&c.queue)
		if tk.dead {
			continue
		}
		c.now = tk.at
		c.steps++
		tk.fn()
		return true
	}
	return false
}
