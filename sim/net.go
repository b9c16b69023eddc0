package sim

import "strings"

// The simulated bus: a cluster of brokers joined by routes, and nodes
// (clients, dispatchers, workers) each connected to one broker. A message
// goes node → its broker → (a route) → the subscriber's broker → the
// subscriber, each hop with its delay and jitter. A hop that is cut holds
// what crosses it, as a TCP connection does: delivered if the hop heals
// while its connection lives, lost with the connection when the broker
// (or the node) gives up on it. A broker learns that a route or a
// connection is gone only after a detection delay, and until then it
// still routes to the subscriptions behind it, as a real cluster does
// while its pings go unanswered. Subjects and queue groups work as NATS delivers them: a
// queue group gives each message to one member, picked at random among
// the subscriptions the publisher's broker sees; a message with a reply
// subject that no subscription matches gets "no responders" back.

// broker is one nats-server of the cluster.
type broker struct {
	id    int
	alive bool
	side  int // partition side; routes across sides are cut
}

// sub is one subscription: an exact subject, or a prefix ending in ">".
type sub struct {
	n      *node
	subj   string
	prefix bool
	queue  string
}

// network is the bus.
type network struct {
	s        *Sim
	brokers  []*broker
	nodes    []*node
	exact    map[string][]*sub
	wild     []*sub
	routeCut [][]bool // cut by a fault, beside sides
	known    [][]bool // the route is up as the brokers know it
	pendRt   [][]*task
	rheld    [][][]func() // what waits on a cut route, for its heal
	lastArr  [][]Time     // per receiver, per sender: FIFO unless reordering
}

func newNetwork(s *Sim, brokers int) *network {
	n := &network{s: s, exact: make(map[string][]*sub)}
	for i := 0; i < brokers; i++ {
		n.brokers = append(n.brokers, &broker{id: i, alive: true})
	}
	n.routeCut = grid[bool](brokers)
	n.known = grid[bool](brokers)
	n.pendRt = grid[*task](brokers)
	n.rheld = grid[[]func()](brokers)
	for i := range n.known {
		for j := range n.known[i] {
			n.known[i][j] = true
		}
	}
	return n
}

func grid[T any](k int) [][]T {
	g := make([][]T, k)
	for i := range g {
		g[i] = make([]T, k)
	}
	return g
}

// routeUp tells whether the route between brokers i and j carries messages now.
func (n *network) routeUp(i, j int) bool {
	if i == j {
		return n.brokers[i].alive
	}
	bi, bj := n.brokers[i], n.brokers[j]
	return bi.alive && bj.alive && !n.routeCut[i][j] && bi.side == bj.side
}

// linkUp tells whether node x's connection to broker b carries messages now.
func (n *network) linkUp(x *node, b int) bool {
	return b >= 0 && n.brokers[b].alive && !x.isolated && x.side == n.brokers[b].side
}

// sees tells whether broker b sees the subscriptions of broker c.
func (n *network) sees(b, c int) bool { return b == c || n.known[b][c] }

func (n *network) subscribe(x *node, subj, queue string) {
	sb := &sub{n: x, subj: subj, queue: queue}
	if strings.HasSuffix(subj, ">") {
		sb.prefix, sb.subj = true, strings.TrimSuffix(subj, ">")
		n.wild = append(n.wild, sb)
	} else {
		n.exact[subj] = append(n.exact[subj], sb)
	}
	x.subs = append(x.subs, sb)
}

// unsubscribeAll drops x's subscriptions (its connection closed, or it stopped).
func (n *network) unsubscribeAll(x *node) {
	for _, sb := range x.subs {
		if sb.prefix {
			n.wild = removeSub(n.wild, sb)
			continue
		}
		l := removeSub(n.exact[sb.subj], sb)
		if len(l) == 0 {
			delete(n.exact, sb.subj)
		} else {
			n.exact[sb.subj] = l
		}
	}
	x.subs = nil
}

func removeSub(l []*sub, sb *sub) []*sub {
	for i, o := range l {
		if o == sb {
			return append(l[:i:i], l[i+1:]...)
		}
	}
	return l
}

// visible reports whether broker b routes to sb: its node's connection is
// open and b knows the route to the node's broker up.
func (n *network) visible(b int, sb *sub) bool {
	c := sb.n.conn
	return c >= 0 && n.sees(b, c)
}

// publish sends m from x. While x is reconnecting, m waits in its buffer,
// as nats.go's reconnect buffer keeps it; a connection that is open but
// cut loses it.
func (n *network) publish(x *node, m *Msg) {
	if x.conn < 0 {
		if x.reconnecting {
			x.buffered = append(x.buffered, m)
		}
		return
	}
	n.s.stats.msgs++
	b := x.conn
	n.s.tracef("%s: %s", x.name, m)
	if !n.linkUp(x, b) {
		n.s.tracef("held %s: %s cut from broker b%d", m, x.name, b)
		x.hold(func() { n.publish(x, m) })
		return
	}
	var match []*sub
	var groups []string
	for _, sb := range n.exact[m.Subject] {
		if n.visible(b, sb) {
			match = append(match, sb)
		}
	}
	for _, sb := range n.wild {
		if strings.HasPrefix(m.Subject, sb.subj) && n.visible(b, sb) {
			match = append(match, sb)
		}
	}
	if len(match) == 0 {
		if m.Reply != "" && m.Kind != KNoResp {
			n.s.tracef("no responders on %s for %s", m.Subject, x.name)
			nr := &Msg{Subject: m.Reply, Kind: KNoResp, ID: m.ID, From: m.Subject}
			n.deliverFromBroker(b, x, nr)
		}
		return
	}
	for _, sb := range match {
		if sb.queue == "" {
			n.send(x, b, sb.n, m)
			continue
		}
		seen := false
		for _, q := range groups {
			seen = seen || q == sb.queue
		}
		if seen {
			continue
		}
		groups = append(groups, sb.queue)
		var members []*sub
		for _, o := range match {
			if o.queue == sb.queue {
				members = append(members, o)
			}
		}
		pick := members[n.s.rng.IntN(len(members))]
		n.send(x, b, pick.n, m)
	}
}

// deliverFromBroker sends the broker's own answer (no responders) back to
// the publisher x, on broker b.
func (n *network) deliverFromBroker(b int, x *node, m *Msg) {
	if !x.subscribedTo(m.Subject) {
		return
	}
	n.arrive(x, nil, b, m, n.s.hop()+n.s.hop())
}

// send carries m from x (on broker b) to node y.
func (n *network) send(x *node, b int, y *node, m *Msg) {
	c := y.conn
	if !n.routeUp(b, c) {
		if !n.brokers[b].alive || !n.brokers[c].alive {
			n.s.tracef("drop %s to %s: broker dead", m, y.name)
			return
		}
		n.s.tracef("held %s to %s: route b%d-b%d cut", m, y.name, b, c)
		i, j := min(b, c), max(b, c)
		ep := y.epoch
		n.rheld[i][j] = append(n.rheld[i][j], func() {
			if y.epoch != ep {
				n.s.tracef("drop %s to %s: connection gone", m, y.name)
				return
			}
			n.send(x, b, y, m)
		})
		return
	}
	f := n.s.faults
	if f.lossy() {
		n.s.stats.lost++
		n.s.tracef("drop %s to %s: lost", m, y.name)
		return
	}
	d := n.s.hop() + n.s.hop()
	if b != c {
		d += n.s.hop()
	}
	n.arrive(y, x, c, m, d)
	if f.duplicating() {
		n.s.stats.duped++
		n.arrive(y, x, c, m, d+n.s.hop())
	}
}

// arrive hands m to y after d, if y's connection to broker c is still
// the one it came by and carries messages then; from is the sender, nil
// for the broker.
func (n *network) arrive(y, from *node, c int, m *Msg, d Time) {
	at := n.s.clock.now + d
	if from != nil && !n.s.faults.reordering() {
		last := &n.lastArr[y.idx][from.idx]
		at = max(at, *last+1)
		*last = at
	}
	epoch := y.epoch
	var deliver func()
	deliver = func() {
		switch {
		case y.epoch != epoch || y.conn != c:
			n.s.tracef("drop %s to %s: connection gone", m, y.name)
		case !n.linkUp(y, c):
			n.s.tracef("held %s to %s: cut from broker b%d", m, y.name, c)
			y.hold(deliver)
		default:
			y.receive(m)
		}
	}
	n.s.clock.at(at, deliver)
}

// recheck compares what the brokers know of routes with what holds now,
// and schedules what they will learn: a route down after a detection
// delay, one healed after it reconnects.
func (n *network) recheck() {
	for i := range n.brokers {
		for j := i + 1; j < len(n.brokers); j++ {
			up := n.routeUp(i, j)
			if up && len(n.rheld[i][j]) > 0 { // healed in time: delivered now
				held := n.rheld[i][j]
				n.rheld[i][j] = nil
				for _, fn := range held {
					fn()
				}
			}
			if up == n.known[i][j] || n.pendRt[i][j] != nil {
				continue
			}
			d := n.s.pick(n.s.cfg.RouteDetect)
			if !n.brokers[i].alive || !n.brokers[j].alive {
				d = n.s.hop() // a dead broker's routes close at once
			}
			n.pendRt[i][j] = n.s.clock.after(d, func() {
				n.pendRt[i][j] = nil
				now := n.routeUp(i, j)
				if now != n.known[i][j] {
					n.known[i][j], n.known[j][i] = now, now
					n.s.faults.touch()
					n.s.tracef("route b%d-b%d known %s", i, j, upDown(now))
					if !now && len(n.rheld[i][j]) > 0 { // the route closed: what it held is lost
						n.s.tracef("route b%d-b%d closed: %d messages lost", i, j, len(n.rheld[i][j]))
						n.rheld[i][j] = nil
					}
				}
				n.recheck()
			})
		}
	}
	for _, x := range n.nodes {
		x.recheckLink()
	}
}

func upDown(up bool) string {
	if up {
		return "up"
	}
	return "down"
}
