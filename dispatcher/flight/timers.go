package flight

import "container/heap"

// timer is a request's deadline (att == nil) or an attempt's watch, or
// the hold's end (req == nil). It lives inside what it times, and leaves
// the heap as soon as that ends, so the heap never holds ended things.
type timer struct {
	at  int64
	idx int // position in the heap; -1 when not in it
	req *Request
	att *Attempt
}

type timerHeap []*timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *timerHeap) Push(x any) {
	t := x.(*timer)
	t.idx = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	n := len(old)
	t := old[n-1]
	old[n-1] = nil
	t.idx = -1
	*h = old[:n-1]
	return t
}

// schedule is the armed timers.
type schedule struct{ heap timerHeap }

// arm adds tm, or moves it if it is armed already.
func (s *schedule) arm(tm *timer) {
	if tm.idx >= 0 && tm.idx < len(s.heap) && s.heap[tm.idx] == tm {
		heap.Fix(&s.heap, tm.idx)
		return
	}
	heap.Push(&s.heap, tm)
}

// disarm takes tm out if it is armed.
func (s *schedule) disarm(tm *timer) {
	if tm.idx >= 0 && tm.idx < len(s.heap) && s.heap[tm.idx] == tm {
		heap.Remove(&s.heap, tm.idx)
	}
}

// pop takes out and returns the earliest timer due at now, or nil.
func (s *schedule) pop(now int64) *timer {
	if len(s.heap) == 0 || s.heap[0].at > now {
		return nil
	}
	return heap.Pop(&s.heap).(*timer)
}

// next is when the earliest armed timer is due, and whether one is.
func (s *schedule) next() (int64, bool) {
	if len(s.heap) == 0 {
		return 0, false
	}
	return s.heap[0].at, true
}
