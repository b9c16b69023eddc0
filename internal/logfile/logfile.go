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
	path string // "" for standard output
	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	quit chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// Stdout is the path that means standard output, as in a container whose
// runtime collects what a process prints.
const Stdout = "-"

// Open appends to path, creating it if needed, or writes to standard
// output when path is Stdout, and flushes every interval (0 = 200ms).
func Open(path string, interval time.Duration) (*File, error) {
	f, err := openPath(path)
	if err != nil {
		return nil, err
	}
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	l := &File{path: path, f: f, w: bufio.NewWriterSize(f, 256<<10), quit: make(chan struct{})}
	l.wg.Add(1)
	go l.loop(interval)
	return l, nil
}

func openPath(path string) (*os.File, error) {
	if path == Stdout {
		return os.Stdout, nil
	}
	return os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
}

var _ io.WriteCloser = (*File)(nil)

// Reopen flushes what is buffered to the file open now and goes on at
// path, opened again: after a log rotation has renamed the old file
// (logrotate, newsyslog), the lines go to a new one. Standard output is
// kept as it is.
func (l *File) Reopen() error {
	if l.path == Stdout {
		return l.Flush()
	}
	f, err := openPath(l.path)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	ferr := l.w.Flush()
	old := l.f
	l.f = f
	l.w.Reset(f)
	if err := old.Close(); ferr == nil {
		ferr = err
	}
	return ferr
}

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
		l.mu.Lock()
		defer l.mu.Unlock()
		err = l.w.Flush()
		if l.f == os.Stdout {
			return // not ours to close
		}
		if cerr := l.f.Close(); err == nil {
			err = cerr
		}
	})
	return err
}
