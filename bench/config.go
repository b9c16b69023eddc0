package bench

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// Errors returned by Run.
var (
	// ErrConfig reports a Config that cannot describe a run.
	ErrConfig = errors.New("bench: invalid config")
)

// Defaults applied where Config leaves a field at its zero value.
const (
	DefaultClients        = 4
	DefaultConcurrency    = 16
	DefaultMaxOutstanding = 1000
	DefaultDuration       = 10 * time.Second
	DefaultTimeout        = 10 * time.Second
	DefaultProgressEvery  = 250 * time.Millisecond
)

// Config describes one run. Zero values mean the documented defaults.
type Config struct {
	URL     string        // NATS URL; "" = nats.DefaultURL
	Options []nats.Option // credentials, TLS
	Prefix  string        // subject prefix; "" = "calc"
	// Subject is where requests go; "" = <prefix>.request (the
	// dispatchers). <prefix>.direct reaches the workers' queue group.
	Subject string
	Name    string // client name prefix; "" = "bench"

	// Clients is the number of NATS connections sharing the load. 0 = 4.
	Clients int
	// Concurrency is the number of requests outstanding in a closed-loop
	// run: each of as many loops sends a request when its last one is
	// answered. 0 = 16. Ignored when Rate is set.
	Concurrency int
	// Rate makes the run open-loop: requests are due at this many per
	// second whatever the replies do. 0 = closed loop.
	Rate float64
	// MaxOutstanding bounds requests outstanding in an open-loop run; a
	// request due while the bound is reached is not sent and counts as
	// missed. 0 = 1000.
	MaxOutstanding int

	// Duration is how long to measure; Requests, if set, stops the run
	// after that many requests (closed loop: sent; open loop: due),
	// whichever comes first. Both 0 = 10s.
	Duration time.Duration
	Requests int
	// Warmup runs the same load this long before measuring; its requests
	// are not counted. 0 = none.
	Warmup time.Duration

	Mix *Mix // nil = DefaultMix
	// Timeout is each request's deadline. 0 = 10s.
	Timeout time.Duration
	// MaxAttempts is the client's sends per request. 0 = 1: a benchmark
	// counts a slow reply as slow, not as a reason to send again.
	MaxAttempts int

	// Progress, if set, is called every ProgressEvery (0 = 250ms) while
	// the run goes, and once more at its end with Final set.
	Progress      func(Progress)
	ProgressEvery time.Duration

	// measured, if set, is called when measuring begins and when the run
	// has ended (Compare reads CPU times there).
	measured func(end bool)
	// bySecond also counts each worker's replies second by second
	// (Report.WorkersBySecond).
	bySecond bool
}

// Progress is a run's state for a progress display.
type Progress struct {
	Elapsed  time.Duration // since measuring began (negative during warmup)
	Duration time.Duration // planned, or 0 when bounded by Requests only
	Done     uint64        // replies measured so far, errors included
	Requests uint64        // planned requests, or 0 when bounded by time only
	Errors   uint64
	Missed   uint64
	Rate     float64 // replies per second since the last call
	Warmup   bool
	Final    bool
}

func (cfg *Config) defaults() error {
	if cfg.Clients == 0 {
		cfg.Clients = DefaultClients
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.MaxOutstanding == 0 {
		cfg.MaxOutstanding = DefaultMaxOutstanding
	}
	if cfg.Duration == 0 && cfg.Requests == 0 {
		cfg.Duration = DefaultDuration
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 1
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = DefaultProgressEvery
	}
	if cfg.Name == "" {
		cfg.Name = "bench"
	}
	if cfg.Mix == nil {
		cfg.Mix = MustParseMix(DefaultMix)
	}
	switch {
	case cfg.Clients < 0:
		return fmt.Errorf("%w: clients %d must be positive", ErrConfig, cfg.Clients)
	case cfg.Concurrency < 0:
		return fmt.Errorf("%w: concurrency %d must be positive", ErrConfig, cfg.Concurrency)
	case cfg.Rate < 0:
		return fmt.Errorf("%w: rate %v must be positive", ErrConfig, cfg.Rate)
	case cfg.MaxOutstanding < 0:
		return fmt.Errorf("%w: max outstanding %d must be positive", ErrConfig, cfg.MaxOutstanding)
	case cfg.Duration < 0 || cfg.Requests < 0 || cfg.Warmup < 0:
		return fmt.Errorf("%w: duration, requests and warmup must not be negative", ErrConfig)
	case cfg.Timeout < 0 || cfg.MaxAttempts < 0:
		return fmt.Errorf("%w: timeout and attempts must not be negative", ErrConfig)
	}
	return nil
}
