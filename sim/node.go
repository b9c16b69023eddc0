package sim

// node is one process on the bus and its connection: a client, a
// dispatcher or a worker. Its connection moves between brokers as nats.go
// does: when it closes (its broker died, or the broker found it stale
// behind a cut), the node reconnects after a delay to a broker of its list
// that it can reach, resubscribes, and flushes what it published meanwhile.
type node struct {
	s    *Sim
	idx  int
	name string
	urls []int // brokers, in the order it tries them

	conn         int    // the broker it is connected to; -1: none
	epoch        uint64 // counts connections, so that a message of an old one is dropped
	connAt       Time   // when the connection was made
	reconnecting bool
	buffered     []*Msg
	isolated     bool // cut from every broker by a fault
	side         int  // partition side
	stale        *task
	held         []func() // what waits on a cut connection, for its heal
	retry        *task

	subs []*sub
	// life counts the process's starts; a task of an earlier life is void.
	life uint64
	dead bool
	// hung: stopped (SIGSTOP); what arrives and what falls due waits.
	hung   bool
	parked []func()
	// slow multiplies the time its work takes.
	slow float64

	handle      func(m *Msg)
	onReconnect func()
}

func (s *Sim) newNode(name string) *node {
	x := &node{s: s, idx: len(s.net.nodes), name: name, conn: -1, slow: 1}
	for i := range s.net.brokers {
		x.urls = append(x.urls, i)
	}
	s.rng.Shuffle(len(x.urls), func(i, j int) { x.urls[i], x.urls[j] = x.urls[j], x.urls[i] })
	s.net.nodes = append(s.net.nodes, x)
	for i := range s.net.lastArr {
		s.net.lastArr[i] = append(s.net.lastArr[i], 0)
	}
	s.net.lastArr = append(s.net.lastArr, make([]Time, len(s.net.nodes)))
	return x
}

// after runs fn d from now, in this life of the process, once it is not hung.
func (x *node) after(d Time, fn func()) *task {
	life := x.life
	var tk *task
	tk = x.s.clock.after(d, func() {
		x.run(life, func() {
			if !tk.dead { // cancelled while it waited for the process to resume
				fn()
			}
		})
	})
	return tk
}

func (x *node) run(life uint64, fn func()) {
	switch {
	case x.dead || x.life != life:
	case x.hung:
		x.parked = append(x.parked, fn)
	default:
		fn()
	}
}

func (x *node) subscribedTo(subj string) bool {
	for _, sb := range x.subs {
		if sb.subj == subj || sb.prefix && len(subj) >= len(sb.subj) && subj[:len(sb.subj)] == sb.subj {
			return true
		}
	}
	return false
}

func (x *node) receive(m *Msg) {
	if x.dead {
		return
	}
	if x.hung {
		x.parked = append(x.parked, func() { x.handle(m) })
		return
	}
	x.handle(m)
}

func (x *node) publish(m *Msg) { x.s.net.publish(x, m) }

// connect opens x's first connection, to the first broker of its list it reaches.
func (x *node) connect() {
	x.reconnecting = true
	x.tryConnect(false)
}

// tryConnect connects x to a broker it reaches, or tries again later.
func (x *node) tryConnect(again bool) {
	x.retry = nil
	if x.dead || x.conn >= 0 {
		return
	}
	n := x.s.net
	for _, b := range x.urls {
		if n.linkUp(x, b) {
			x.conn, x.connAt = b, x.s.clock.now
			x.epoch++
			x.s.faults.touch()
			x.reconnecting = false
			x.s.tracef("%s connected to b%d", x.name, b)
			buf := x.buffered
			x.buffered = nil
			for _, m := range buf {
				x.publish(m)
			}
			if again && x.onReconnect != nil {
				x.run(x.life, x.onReconnect)
			}
			x.recheckLink()
			return
		}
	}
	x.retry = x.after(x.s.pick(x.s.cfg.ReconnectWait), func() { x.tryConnect(again) })
}

// disconnect closes x's connection; it reconnects after a delay, to the
// next broker of its list first, as nats.go does.
func (x *node) disconnect(why string) {
	if x.conn < 0 {
		return
	}
	x.s.tracef("%s disconnected from b%d: %s", x.name, x.conn, why)
	old := x.conn
	x.conn = -1
	x.s.faults.touch()
	x.epoch++
	if len(x.held) > 0 {
		x.s.tracef("%s: %d messages lost with the connection", x.name, len(x.held))
		x.held = nil
	}
	cancel(x.stale)
	x.stale = nil
	if x.dead {
		return
	}
	x.reconnecting = true
	for i, b := range x.urls { // the lost broker goes last
		if b == old {
			x.urls = append(append(x.urls[:i:i], x.urls[i+1:]...), old)
			break
		}
	}
	x.s.stats.reconnects++
	x.retry = x.after(x.s.pick(x.s.cfg.ReconnectDelay), func() { x.tryConnect(true) })
}

// hold keeps fn, a message crossing x's cut connection, for its heal.
func (x *node) hold(fn func()) { x.held = append(x.held, fn) }

// recheckLink closes x's connection at once if its broker died, or after
// the stale delay while it is cut from it or hung.
func (x *node) recheckLink() {
	if x.conn < 0 {
		return
	}
	n := x.s.net
	if !n.brokers[x.conn].alive {
		x.disconnect("broker died")
		return
	}
	if n.linkUp(x, x.conn) {
		held := x.held
		x.held = nil
		for _, fn := range held { // healed in time: delivered now
			fn()
		}
	}
	if n.linkUp(x, x.conn) && !x.hung {
		cancel(x.stale)
		x.stale = nil
		return
	}
	if x.stale != nil {
		return
	}
	x.stale = x.s.clock.after(x.s.pick(x.s.cfg.StaleAfter), func() {
		x.stale = nil
		if x.conn >= 0 && (!n.linkUp(x, x.conn) || x.hung) {
			x.disconnect("stale")
		}
	})
}

// crash ends the process: its connection closes at once (the kernel resets it).
func (x *node) crash() {
	x.dead, x.hung, x.parked = true, false, nil
	x.s.net.unsubscribeAll(x)
	x.disconnect("crashed")
	cancel(x.retry)
	x.buffered = nil
	x.reconnecting = false
}

// restart starts a new life of the process, which then connects.
func (x *node) restart() {
	x.dead, x.hung, x.parked, x.slow = false, false, nil, 1
	x.life++
	x.connect()
}

// hang stops the process; what arrives waits for resume.
func (x *node) hang() {
	x.hung = true
	x.recheckLink()
}

func (x *node) resume() {
	if x.dead || !x.hung {
		return
	}
	x.hung = false
	p := x.parked
	x.parked = nil
	for i, fn := range p {
		if x.dead {
			return
		}
		if x.hung { // stopped again: the rest waits
			x.parked = append(p[i:len(p):len(p)], x.parked...)
			return
		}
		fn()
	}
	x.recheckLink()
}
