// Package logfile is a buffered, append-only log file for slog handlers:
// writes land in memory and a background loop flushes them, so that a
// logger never waits on the disk.
package logfile

import (
	"bufio"
	"io"
	"os"
	"sync"
	"time"
)

// File is safe for concurrent use. Close flushes and closes it.
type File struct {
	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	quit chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// Open appends to path, creating it if needed, and flushes every interval
// (0 = 200ms).
func Open(path string, interval time.Duration) (*File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	l := &File{f: f, w: bufio.NewWriterSize(f, 256<<10), quit: make(chan struct{})}
	l.wg.Add(1)
	go l.loop(interval)
	return l, nil
}

var _ io.WriteCloser = (*File)(nil)

func (l *File) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Flush writes what is buffered to the file.
func (l *File) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Flush()
}

func (l *File) loop(interval time.Duration) {
	defer l.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			_ = l.Flush()
		case <-l.quit:
			return
		}
	}
}

// Close flushes and closes the file. Safe to call more than once.
func (l *File) Close() error {
	var err error
	l.once.Do(func() {
		close(l.quit)
		l.wg.Wait()
		if err = l.Flush(); err == nil {
			err = l.f.Close()
		} else {
			l.f.Close()
		}
	})
	return err
}
