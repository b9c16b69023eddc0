package sim

import "fmt"

// The worker's side of docs/protocol.md, as calcworker keeps it: a claim
// of its id before it subscribes, heartbeats on a timer of its own (with
// jitter, at once on discover and on reconnect), requests computed
// concurrency at a time, progress messages for every reply subject with
// requests held for half a progress interval, Calc-Cancel, a long job's
// reply published with a bounce subject (an inbox) and handed over on
// calc.orphan.<id>, with the forward's Calc-Client-Reply, when no
// acknowledgement comes, and the drain. Faults: crash, hang,
// slowness, 500 to everything, restart with the same id.

// job is one request a worker holds.
type job struct {
	m       *Msg
	arrived Time
	started bool
	done    *task
	// left: the work still to do, at full speed, as of mark.
	left Time
	mark Time
}

// worker is one worker process model.
type worker struct {
	*node
	id       string
	started  Time // started_at of this life
	seq      uint64
	state    string // up, draining; "" before its claim passed
	conc     int
	pg       Time
	interval Time
	fail500  bool
	comeBack bool // its drain healed: it starts again once it exits
	token    string
	nBounce  int
	jobs     []*job
	bounces  map[string]*Msg // awaiting their ack, by bounce subject
	hb, pgt  *task
}

func (s *Sim) newWorker(i int) *worker {
	id := fmt.Sprintf("w%d", i)
	w := &worker{id: id, conc: 1 + s.rng.IntN(3), pg: s.cfg.Progress, interval: s.cfg.Heartbeat}
	w.node = s.newNode(id)
	w.handle = w.receive
	w.onReconnect = w.heartbeat
	s.workers = append(s.workers, w)
	return w
}

func (w *worker) subject() string { return "calc.worker." + w.id }

// start runs a new life: connect, claim the id, then subscribe and beat.
func (w *worker) start() {
	w.restart()
	w.started, w.seq, w.state, w.fail500 = w.s.clock.now, 0, "", false
	w.jobs, w.bounces = nil, make(map[string]*Msg)
	w.hb, w.pgt = nil, nil // the last life's timers are void
	w.token = fmt.Sprintf("%s-%d", w.id, w.life)
	claimReply := "calc.claim." + w.id + "." + w.token
	w.s.net.subscribe(w.node, claimReply, "")
	w.publish(&Msg{Subject: "calc.claim." + w.id, Reply: claimReply, Kind: KClaim, From: w.id})
	w.s.stats.claims++
	w.after(500*Millisecond, w.serve)
}

// serve subscribes, once the claim found the id free.
func (w *worker) serve() {
	if w.state != "" {
		return
	}
	w.state = "up"
	w.s.tracef("%s serving (life %d)", w.id, w.life)
	n := w.s.net
	n.subscribe(w.node, "calc.claim."+w.id, "")
	n.subscribe(w.node, w.subject(), "")
	n.subscribe(w.node, "calc.discover", "")
	n.subscribe(w.node, w.bounceInbox()+">", "")
	w.heartbeat()
}

func (w *worker) heartbeat() {
	if w.state == "" {
		return
	}
	cancel(w.hb)
	w.seq++
	w.publish(&Msg{Subject: "calc.heartbeat." + w.id, Kind: KHeartbeat, From: w.id,
		State: w.state, Seq: w.seq, Started: w.started, Interval: w.interval, Pg: w.pg})
	jit := Time(w.s.rng.Int64N(int64(w.interval / 10)))
	w.hb = w.after(w.interval-w.interval/20+jit, w.heartbeat)
}

func (w *worker) receive(m *Msg) {
	switch m.Kind {
	case KNoResp:
		if m.Subject == "calc.claim."+w.id+"."+w.token {
			w.serve()
			return
		}
		if b := w.bounces[m.Subject]; b != nil { // the dispatcher's inbox is gone
			w.handOver(m.Subject)
		}
	case KClaimAns:
		if w.state == "" {
			w.s.tracef("%s: id taken by a live process (started %v): exits", w.id, m.Started)
			w.s.stats.claimsRefused++
			w.crash()
		}
	case KClaim:
		if w.state != "" {
			w.publish(&Msg{Subject: m.Reply, Kind: KClaimAns, From: w.id, State: w.state, Seq: w.seq, Started: w.started})
		}
	case KDiscover:
		w.heartbeat()
	case KAck:
		delete(w.bounces, m.Subject)
	case KCancel: // every job of that id, whoever sent it, as calcworker does
		kept := w.jobs[:0]
		for _, j := range w.jobs {
			if j.m.ID == m.ID {
				cancel(j.done)
				continue
			}
			kept = append(kept, j)
		}
		clear(w.jobs[len(kept):])
		w.jobs = kept
		w.schedule()
	case KForward:
		w.request(m)
	}
}

func (w *worker) request(m *Msg) {
	w.s.stats.received++
	if w.state != "up" && w.state != "draining" || w.fail500 {
		code, text := 500, "worker failed"
		if w.state != "up" && w.state != "draining" {
			code, text = 503, "worker stopping"
		}
		w.reply(&job{m: m, arrived: w.s.clock.now}, code, text)
		return
	}
	j := &job{m: m, arrived: w.s.clock.now}
	w.jobs = append(w.jobs, j)
	w.schedule()
	if w.pgt == nil {
		w.pgt = w.after(w.pg, w.progressTick)
	}
}

// schedule starts the jobs waiting, up to the worker's concurrency.
func (w *worker) schedule() {
	running := 0
	for _, j := range w.jobs {
		if j.started {
			running++
		}
	}
	for _, j := range w.jobs {
		if running >= w.conc {
			return
		}
		if j.started {
			continue
		}
		j.started, running = true, running+1
		w.s.tracef("%s starts %s", w.id, j.m.ID)
		w.s.jobStarted(w, j.m)
		j.left, j.mark = j.m.Work, w.s.clock.now
		w.plan(j)
	}
}

// plan arms j's end at the worker's speed: its result, or its deadline.
func (w *worker) plan(j *job) {
	cancel(j.done)
	now := w.s.clock.now
	work := Time(float64(j.left) * w.slow)
	left := j.arrived + j.m.Timeout - now
	if work > left {
		j.done = w.after(max(left, 0), func() { w.finish(j, 504, "deadline exceeded") })
	} else {
		j.done = w.after(work, func() { w.finish(j, 0, "") })
	}
}

// setSlow changes the worker's speed; the jobs running go on at the new one.
func (w *worker) setSlow(f float64) {
	now := w.s.clock.now
	for _, j := range w.jobs {
		if j.started {
			j.left -= Time(float64(now-j.mark) / w.slow)
			j.left, j.mark = max(j.left, 0), now
		}
	}
	w.slow = f
	for _, j := range w.jobs {
		if j.started {
			w.plan(j)
		}
	}
}

func (w *worker) finish(j *job, code int, text string) {
	for i, o := range w.jobs {
		if o == j {
			w.jobs = append(w.jobs[:i], w.jobs[i+1:]...)
			break
		}
	}
	if w.fail500 {
		code, text = 500, "worker failed"
	}
	w.reply(j, code, text)
	w.schedule()
}

// reply publishes j's reply; a job held long enough to be named in a
// progress message gets a bounce subject, and is handed over unless
// acknowledged.
func (w *worker) reply(j *job, code int, text string) {
	r := &Msg{Subject: j.m.Reply, Kind: KReply, ID: j.m.ID, From: w.id, Code: code, Text: text}
	if code == 0 {
		r.Result = resultOf(j.m.Arg)
	}
	if w.s.clock.now-j.arrived >= w.pg/2 {
		w.nBounce++
		r.Reply = fmt.Sprintf("%s%d", w.bounceInbox(), w.nBounce)
		r.ClientReply = j.m.ClientReply
		w.bounces[r.Reply] = r
		b := r.Reply
		w.after(w.s.cfg.AckWait, func() {
			if w.bounces[b] != nil {
				w.handOver(b)
			}
		})
	}
	w.publish(r)
}

func (w *worker) handOver(bounce string) {
	r := w.bounces[bounce]
	delete(w.bounces, bounce)
	w.s.stats.handOvers++
	h := *r
	h.Subject, h.Reply, h.Kind = "calc.orphan."+w.id, "", KOrphan
	w.publish(&h)
}

// bounceInbox is the prefix of this life's bounce subjects, under an
// inbox as the worker's are: "_INBOX.b.<token>.".
func (w *worker) bounceInbox() string { return "_INBOX.b." + w.token + "." }

// progressTick names, on each reply subject, the requests held for half
// an interval or more.
func (w *worker) progressTick() {
	w.pgt = nil
	if len(w.jobs) == 0 {
		return
	}
	var subjects []string
	ids := map[string][]string{}
	for _, j := range w.jobs {
		if w.s.clock.now-j.arrived < w.pg/2 || !j.m.WantPg {
			continue
		}
		if _, ok := ids[j.m.Reply]; !ok {
			subjects = append(subjects, j.m.Reply)
		}
		ids[j.m.Reply] = append(ids[j.m.Reply], j.m.ID)
	}
	for _, subj := range subjects { // in the order of the jobs: no map order
		w.publish(&Msg{Subject: subj, Kind: KProgress, IDs: ids[subj], From: w.id})
	}
	jit := Time(w.s.rng.Int64N(int64(w.pg / 10)))
	w.pgt = w.after(w.pg-w.pg/20+jit, w.progressTick)
}

// drain says draining, serves a grace, then stops taking requests and
// exits once it holds none; it restarts later with the same id.
func (w *worker) drain() {
	if w.state != "up" {
		return
	}
	w.state = "draining"
	w.s.stats.drains++
	w.heartbeat()
	w.after(w.s.cfg.DrainGrace, func() {
		w.s.net.unsubscribeAll(w.node)
		w.s.net.subscribe(w.node, w.bounceInbox()+">", "")
		w.exitWhenIdle()
	})
}

func (w *worker) exitWhenIdle() {
	if len(w.jobs) > 0 || len(w.bounces) > 0 {
		w.after(50*Millisecond, w.exitWhenIdle)
		return
	}
	w.s.tracef("%s drained: exits", w.id)
	w.state = ""
	w.crash()
	if w.comeBack {
		w.comeBack = false
		w.start()
	}
}
