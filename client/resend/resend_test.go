package resend

import (
	"testing"
	"time"
)

const ms = int64(time.Millisecond)

func policy(silence time.Duration, max int) Policy {
	return Policy{Silence: silence, AttemptWait: 2 * time.Second, MaxAttempts: max,
		Rand: func(n int64) int64 { return n - 1 }}
}

// A request no dispatcher said it holds is sent again after each silence,
// past MaxAttempts; once one holds it, after MaxAttempts-1 resends in a
// row with no word from a dispatcher, the resends space out.
func TestResendAfterSilence(t *testing.T) {
	c, a := Start(policy(250*time.Millisecond, 2), 0, 10000*ms)
	if !a.Send || a.Wake != 250*ms {
		t.Fatalf("Start = %+v; want a send, wake at 250ms", a)
	}
	for i, now := range []int64{250, 500, 750} {
		a = c.Timer(now*ms, 250*time.Millisecond, true)
		if !a.Send || !a.Retry || a.Counted != (i == 0) {
			t.Fatalf("Timer(%dms) = %+v; want a resend (counted the first time)", now, a)
		}
	}
	c.Progress(800 * ms)
	if a = c.Timer(1000*ms, 250*time.Millisecond, true); a.Send || a.Wake != 1050*ms {
		t.Fatalf("Timer(1000ms), heard at 800 = %+v; want to wait until 1050ms", a)
	}
	if a = c.Timer(1050*ms, 250*time.Millisecond, true); !a.Send {
		t.Fatalf("Timer(1050ms), held, silent since = %+v; want one resend", a)
	}
	if a = c.Timer(1300*ms, 250*time.Millisecond, true); a.Send || a.Wake != 1550*ms {
		t.Fatalf("Timer(1300ms), held, 1 resend since = %+v; want the next at 1550ms", a)
	}
	if a = c.Timer(10000*ms, 250*time.Millisecond, true); a.Done != OutcomeDeadline {
		t.Fatalf("Timer at the deadline = %+v; want 504", a)
	}
	if c.Sends() != 5 {
		t.Fatalf("sends %d; want 5", c.Sends())
	}
}

// A dispatcher that held the request and died, or resends swallowed by a
// cut route: the request is sent again, further and further apart, until
// its deadline; a progress message starts the count again (the
// simulator's seeds 6 and 207: a request held, its dispatcher crashed or
// cut off, no resend after the 4th send, 504 although the system was
// whole for 5 s). The connection back always sends at once.
func TestResendAfterHeldSilence(t *testing.T) {
	c, _ := Start(policy(250*time.Millisecond, 3), 0, 10000*ms)
	c.Progress(100 * ms)
	sends := func(from, to int64) (n int) {
		for now := from; now <= to; now += 250 {
			if a := c.Timer(now*ms, 250*time.Millisecond, true); a.Send {
				n++
			}
		}
		return n
	}
	// At 350 and 600 ms, then 500 ms later, then 1 s after that.
	if n := sends(350, 2000); n != 3 {
		t.Fatalf("resends after a dispatcher's silence: %d; want 3", n)
	}
	c.Progress(2100 * ms)
	if n := sends(2350, 4000); n != 3 {
		t.Fatalf("resends after another dispatcher's silence: %d; want 3", n)
	}
	if n := sends(4100, 9900); n != 2 {
		t.Fatalf("resends in the next 6 s of silence: %d; want 2 (1 s, then 2 s apart)", n)
	}
	c.Reconnected(9950 * ms)
	if a := c.Timer(9950*ms, 250*time.Millisecond, true); !a.Send {
		t.Fatalf("Timer after the connection came back = %+v; want a send", a)
	}
}

func TestBudgetDenies(t *testing.T) {
	c, _ := Start(policy(250*time.Millisecond, 4), 0, 10000*ms)
	if a := c.Timer(250*ms, 250*time.Millisecond, false); a.Send || !a.Denied || a.Wake != 500*ms {
		t.Fatalf("Timer, budget spent = %+v; want denied, wake at 500ms", a)
	}
	if a := c.Timer(500*ms, 250*time.Millisecond, true); !a.Send || !a.Counted {
		t.Fatalf("Timer, budget back = %+v; want a counted resend", a)
	}
}

// Without progress messages: resend after AttemptWait, doubling.
func TestAttemptWaitDoubles(t *testing.T) {
	c, a := Start(policy(-1, 3), 0, 100000*ms)
	for _, want := range []int64{2000, 6000, 14000, 100000} {
		if a.Wake != want*ms {
			t.Fatalf("wake %d; want %dms", a.Wake/ms, want)
		}
		a = c.Timer(a.Wake, 0, true)
	}
}

// "No responders" backs off, jittered, and a timeout then is a 503; the
// connection back sends at once.
func TestNoRespondersAndReconnect(t *testing.T) {
	c, _ := Start(policy(250*time.Millisecond, 4), 0, 1000*ms)
	if a := c.NoResponders(10 * ms); a.Wake != 10*ms+int64(5*time.Millisecond) {
		t.Fatalf("NoResponders = %+v; want wake after the backoff", a)
	}
	if a := c.Timer(15*ms, 250*time.Millisecond, true); !a.Send {
		t.Fatalf("Timer after the backoff = %+v; want a send, silence or not", a)
	}
	if a := c.Reconnected(20 * ms); a.Wake != 20*ms {
		t.Fatalf("Reconnected = %+v; want wake now", a)
	}
	if a := c.Timer(20*ms, 250*time.Millisecond, true); !a.Send {
		t.Fatalf("Timer after a reconnect = %+v; want a send", a)
	}
	if a := c.Timer(1000*ms, 250*time.Millisecond, true); a.Done != OutcomeNoDispatcher {
		t.Fatalf("Timer at the deadline = %+v; want 503", a)
	}
}

func TestSilenceAndGap(t *testing.T) {
	base := 250 * time.Millisecond
	for _, tc := range []struct {
		gap  int64
		want time.Duration
	}{{0, base}, {100 * ms, base}, {200 * ms, 500 * time.Millisecond}, {1000 * ms, 3 * base}} {
		if got := Silence(base, tc.gap); got != tc.want {
			t.Errorf("Silence(%v) = %v; want %v", time.Duration(tc.gap), got, tc.want)
		}
	}
	for _, tc := range []struct{ avg, gap, want int64 }{
		{0, 100 * ms, 100 * ms}, {100 * ms, 180 * ms, 110 * ms}, {100 * ms, 3000 * ms, 100 * ms}, {100 * ms, 0, 100 * ms},
	} {
		if got := NextGap(tc.avg, tc.gap); got != tc.want {
			t.Errorf("NextGap(%v, %v) = %v; want %v", tc.avg, tc.gap, got, tc.want)
		}
	}
}
