package dispatcher

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/bilancia/bilancia/internal/jsonstr"
)

// record is one request as the log tells it. It is filled on the hot path
// and formatted later, on the log goroutine.
type record struct {
	at       time.Time
	id       string
	client   string
	command  []byte // cut to maxLoggedCommand at a rune boundary
	cmdLen   int    // the command's length before the cut
	worker   string
	attempts int
	status   int
	latency  time.Duration
}

// requestLog writes request records from a bounded queue on its own
// goroutine, so that logging never waits on the disk in the request path.
// When the queue is full, records are dropped and counted.
//
// With a writer, it encodes each record itself, in the shape slog's JSON
// handler gives the other lines of the log, and writes whatever is queued
// in one go: at high request rates, slog's generic work per record is a
// large share of the dispatcher's CPU (BenchmarkRequestLine compares the
// two). Without one, records go through the slog logger.
type requestLog struct {
	log     *slog.Logger
	w       io.Writer
	q       chan record
	dropped atomic.Uint64
	wg      sync.WaitGroup
	once    sync.Once
	quit    chan struct{} // the queue is never closed: a late add must not panic
	buf     []byte
}

func newRequestLog(log *slog.Logger, w io.Writer, size int) *requestLog {
	return &requestLog{log: log, w: w, q: make(chan record, size), quit: make(chan struct{})}
}

func (l *requestLog) start() {
	l.wg.Add(1)
	go l.run()
}

// add queues a record for r without blocking. The client's fields are
// cut here, where cutting costs nothing unless they are too long.
func (l *requestLog) add(r *request, worker string, attempts, status int, now time.Time) {
	cmd := r.data
	if len(cmd) > maxLoggedCommand {
		cmd = cmd[:cutAt(cmd, maxLoggedCommand)]
	}
	select {
	case l.q <- record{at: now, id: clip(r.id, maxLoggedField), client: clip(r.client, maxLoggedField),
		command: cmd, cmdLen: len(r.data), worker: worker,
		attempts: attempts, status: status, latency: now.Sub(r.start)}:
	default:
		l.dropped.Add(1)
	}
}

// maxBatch bounds the records encoded before a write.
const maxBatch = 1024

// linger is how long the writer lets records gather after the first one:
// at low rates, a wakeup and a write per request cost the dispatcher more
// CPU than the request itself, and lines are at most this late.
const linger = 10 * time.Millisecond

func (l *requestLog) run() {
	defer l.wg.Done()
	var reported uint64
	t := time.NewTimer(linger)
	t.Stop()
	for {
		select {
		case rec := <-l.q:
			l.write(rec)
			t.Reset(linger)
			select {
			case <-t.C:
			case <-l.quit: // stop writes at once
				t.Stop()
			}
			l.drain()
			if d := l.dropped.Load(); d != reported && len(l.q) == 0 {
				l.log.Warn("request log lines dropped", "dropped_total", d)
				reported = d
			}
		case <-l.quit:
			l.drain()
			return
		}
	}
}

// drain writes what is queued now, in writes of up to maxBatch records;
// records queued meanwhile wait for the next round, so it ends.
func (l *requestLog) drain() {
	for n := len(l.q); n > 0; n-- {
		l.write(<-l.q)
		if n%maxBatch == 0 {
			l.flush()
		}
	}
	l.flush()
}

func (l *requestLog) flush() {
	if l.w != nil && len(l.buf) > 0 {
		_, _ = l.w.Write(l.buf)
		l.buf = l.buf[:0]
	}
}

// write logs rec with the time the request ended, not the time it is
// written.
func (l *requestLog) write(rec record) {
	cmd := rec.command
	if !utf8.Valid(cmd) {
		cmd = []byte("<not UTF-8>") // what it was matters more than its bytes
	}
	if rec.cmdLen > len(rec.command) {
		cmd = append(cmd[:len(cmd):len(cmd)], cutMark(rec.cmdLen)...)
	}
	latency := float64(rec.latency.Microseconds()) / 1000
	if l.w != nil {
		l.buf = appendRecord(l.buf, rec, cmd, latency)
		return
	}
	ctx := context.Background()
	h := l.log.Handler()
	if !h.Enabled(ctx, slog.LevelInfo) {
		return
	}
	r := slog.NewRecord(rec.at, slog.LevelInfo, "request", 0)
	r.AddAttrs(
		slog.String("id", rec.id),
		slog.String("client", rec.client),
		slog.String("command", string(cmd)),
		slog.String("worker", rec.worker),
		slog.Int("attempts", rec.attempts),
		slog.Int("status", rec.status),
		slog.Float64("latency_ms", latency),
	)
	_ = h.Handle(ctx, r)
}

// appendRecord appends rec as one JSON line, keys in slog's order.
func appendRecord(b []byte, rec record, cmd []byte, latency float64) []byte {
	b = append(b, `{"time":"`...)
	b = rec.at.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"INFO","msg":"request","id":`...)
	b = jsonstr.Append(b, rec.id)
	b = append(b, `,"client":`...)
	b = jsonstr.Append(b, rec.client)
	b = append(b, `,"command":`...)
	b = jsonstr.Append(b, cmd)
	b = append(b, `,"worker":`...)
	b = jsonstr.Append(b, rec.worker)
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(rec.attempts), 10)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(rec.status), 10)
	b = append(b, `,"latency_ms":`...)
	b = strconv.AppendFloat(b, latency, 'f', -1, 64)
	return append(b, "}\n"...)
}

// stop writes what is queued and returns. Safe to call more than once.
func (l *requestLog) stop() {
	l.once.Do(func() { close(l.quit) })
	l.wg.Wait()
}
