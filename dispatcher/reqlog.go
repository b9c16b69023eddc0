package dispatcher

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// maxLoggedCommand bounds the command text kept per log line.
const maxLoggedCommand = 200

// record is one request as the log tells it. It is filled on the hot path
// and formatted later, on the log goroutine.
type record struct {
	at       time.Time
	id       string
	client   string
	command  []byte
	worker   string
	attempts int
	status   int
	latency  time.Duration
}

// requestLog writes request records from a bounded queue on its own
// goroutine, so that logging never waits on the disk in the request path.
// When the queue is full, records are dropped and counted.
type requestLog struct {
	log     *slog.Logger
	q       chan record
	dropped atomic.Uint64
	wg      sync.WaitGroup
	once    sync.Once
	quit    chan struct{} // the queue is never closed: a late add must not panic
}

func newRequestLog(log *slog.Logger, size int) *requestLog {
	return &requestLog{log: log, q: make(chan record, size), quit: make(chan struct{})}
}

func (l *requestLog) start() {
	l.wg.Add(1)
	go l.run()
}

// add queues a record for r without blocking.
func (l *requestLog) add(r *request, worker string, attempts, status int, now time.Time) {
	cmd := r.data
	if len(cmd) > maxLoggedCommand {
		cmd = cmd[:maxLoggedCommand]
	}
	select {
	case l.q <- record{at: now, id: r.id, client: r.client, command: cmd, worker: worker,
		attempts: attempts, status: status, latency: now.Sub(r.start)}:
	default:
		l.dropped.Add(1)
	}
}

func (l *requestLog) run() {
	defer l.wg.Done()
	var reported uint64
	for {
		select {
		case rec := <-l.q:
			l.write(rec)
			if d := l.dropped.Load(); d != reported && len(l.q) == 0 {
				l.log.Warn("request log lines dropped", "dropped_total", d)
				reported = d
			}
		case <-l.quit:
			for {
				select {
				case rec := <-l.q:
					l.write(rec)
				default:
					return
				}
			}
		}
	}
}

// write logs rec with the time the request ended, not the time it is
// written.
func (l *requestLog) write(rec record) {
	ctx := context.Background()
	h := l.log.Handler()
	if !h.Enabled(ctx, slog.LevelInfo) {
		return
	}
	cmd := rec.command
	if !utf8.Valid(cmd) {
		cmd = []byte("<not UTF-8>")
	}
	r := slog.NewRecord(rec.at, slog.LevelInfo, "request", 0)
	r.AddAttrs(
		slog.String("id", rec.id),
		slog.String("client", rec.client),
		slog.String("command", string(cmd)),
		slog.String("worker", rec.worker),
		slog.Int("attempts", rec.attempts),
		slog.Int("status", rec.status),
		slog.Float64("latency_ms", float64(rec.latency.Microseconds())/1000),
	)
	_ = h.Handle(ctx, r)
}

// stop writes what is queued and returns. Safe to call more than once.
func (l *requestLog) stop() {
	l.once.Do(func() { close(l.quit) })
	l.wg.Wait()
}
