package loadcheck

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Detection methods for Config.Detect.
const (
	// DetectResend: the first request answered after the client sent it
	// again, once the fault was injected (a dispatcher vanished).
	DetectResend = "resend"
	// DetectView: the first status poll after the injection showing the
	// deployment not whole: an expected dispatcher not answering, or one
	// listing an expected worker not up.
	DetectView = "view"
	// DetectWorkerPrefix + id: the first status answer after the injection
	// listing that worker not up (draining, down, ejected or absent).
	DetectWorkerPrefix = "worker-left:"
	// DetectDisconnect: the first load connection to lose its broker after
	// the injection (the client noticed).
	DetectDisconnect = "disconnect"
)

// View is the deployment when whole: these dispatchers answer status and
// each lists these workers up.
type View struct {
	Dispatchers []string
	Workers     []string
}

func (v View) empty() bool { return len(v.Dispatchers) == 0 }

// Config describes one run. Zero values mean the documented defaults.
type Config struct {
	// URLs are the brokers. Load connection i tries them in order starting
	// at URLs[i mod len], so that the connections spread over the brokers
	// and each broker carries some of the load; required.
	URLs []string
	// Options are extra nats.go options (credentials, TLS).
	Options []nats.Option
	Prefix  string // "" = "calc"

	Requests int           // requests to send; 0 = 3000
	Rate     float64       // requests per second, open loop; 0 = 250
	Clients  int           // NATS connections sharing the load; 0 = 4
	MaxOpen  int           // requests in flight at most; 0 = 400
	Timeout  time.Duration // each request's deadline; 0 = 10s
	// SleepEvery makes one request in SleepEvery a "sleep", whose result
	// is the worker's id (a slow job in flight when the fault hits). 0 =
	// 10; negative = none. Sleep is its length; 0 = 20ms.
	SleepEvery int
	Sleep      time.Duration

	// Expect is the whole deployment; empty means no view checks (then
	// WaitWhole, Rejoin and DetectView do nothing).
	Expect View
	// WaitWhole bounds the wait for Expect before the load starts;
	// 0 = 60s.
	WaitWhole time.Duration

	// Fault names the fault in the report; "" = "none".
	Fault string
	// Inject is called once InjectAt requests were sent, while the load
	// goes on; nil = no fault.
	Inject func(context.Context) error
	// InjectAt is the number of requests sent before Inject; 0 =
	// Requests/4.
	InjectAt int
	// Heal, if set, is called HealAfter after Inject started.
	Heal      func(context.Context) error
	HealAfter time.Duration
	// Window is how long after the injection requests count as during the
	// fault (p99, and the last request hurt for recover); 0 = HealAfter +
	// 3s.
	Window time.Duration
	// Detect says how detection is measured: DetectResend, DetectView,
	// DetectDisconnect, DetectWorkerPrefix+id, several of them comma
	// separated (the earliest found counts), or "" for none.
	Detect string
	// Rejoin makes recovery also wait for Expect to be whole again after
	// the heal (or after Inject returned, if there is no heal); recover is
	// then the later of that and the last request hurt. RejoinWait bounds
	// the wait after the load (0 = 60s).
	Rejoin     bool
	RejoinWait time.Duration

	// PollEvery is the status poll period; 0 = 100ms.
	PollEvery time.Duration
	// Logf hears about progress; nil = silent.
	Logf func(format string, args ...any)
}

func (c *Config) defaults() error {
	if len(c.URLs) == 0 {
		return fmt.Errorf("%w: no broker URL", ErrConfig)
	}
	if c.Requests < 0 || c.Rate < 0 || c.Clients < 0 || c.MaxOpen < 0 || c.InjectAt < 0 {
		return fmt.Errorf("%w: negative count or rate", ErrConfig)
	}
	if c.Requests == 0 {
		c.Requests = 3000
	}
	if c.Rate == 0 {
		c.Rate = 250
	}
	if c.Clients == 0 {
		c.Clients = 4
	}
	if c.MaxOpen == 0 {
		c.MaxOpen = 400
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.SleepEvery == 0 {
		c.SleepEvery = 10
	}
	if c.Sleep <= 0 {
		c.Sleep = 20 * time.Millisecond
	}
	if c.WaitWhole <= 0 {
		c.WaitWhole = 60 * time.Second
	}
	if c.Fault == "" {
		c.Fault = "none"
	}
	if c.InjectAt == 0 {
		c.InjectAt = c.Requests / 4
	}
	if c.InjectAt > c.Requests {
		return fmt.Errorf("%w: inject at %d of %d requests", ErrConfig, c.InjectAt, c.Requests)
	}
	if c.Window <= 0 {
		c.Window = c.HealAfter + 3*time.Second
	}
	if c.RejoinWait <= 0 {
		c.RejoinWait = 60 * time.Second
	}
	if c.PollEvery <= 0 {
		c.PollEvery = 100 * time.Millisecond
	}
	for _, d := range detectors(c.Detect) {
		switch {
		case d == DetectResend, d == DetectView, d == DetectDisconnect:
		case strings.HasPrefix(d, DetectWorkerPrefix) && len(d) > len(DetectWorkerPrefix):
		default:
			return fmt.Errorf("%w: detect %q is not %s, %s, %s or %s<id>", ErrConfig, d, DetectResend, DetectView, DetectDisconnect, DetectWorkerPrefix)
		}
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	return nil
}

// detectors splits Config.Detect.
func detectors(s string) []string {
	var out []string
	for _, d := range strings.Split(s, ",") {
		if d = strings.TrimSpace(d); d != "" {
			out = append(out, d)
		}
	}
	return out
}
