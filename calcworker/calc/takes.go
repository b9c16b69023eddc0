package calc

import "time"

// Takes is how long the request in payload asks its worker to take: the
// milliseconds of sleep and spin, 0 for every other op and for a request
// that does not parse. A client adds it to its default deadline, so that
// every op a worker accepts can finish with the defaults.
func Takes(payload []byte) time.Duration {
	c, e := parse(payload, 0)
	if e != nil || (c.Op != "sleep" && c.Op != "spin") || len(c.Args) != 1 {
		return 0
	}
	ms := c.Args[0].num().float()
	if !(ms > 0 && ms <= float64(time.Hour/time.Millisecond)) {
		return 0 // the worker refuses it: no time to wait for
	}
	return time.Duration(ms * float64(time.Millisecond))
}
