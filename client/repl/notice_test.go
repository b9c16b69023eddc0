package repl

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/internal/testutil"
)

// TestNoticesAbovePrompt: a log line written through Notices' writer
// while a command is half typed lands on a line of its own above the
// prompt, which is drawn again below it with what was typed.
func TestNoticesAbovePrompt(t *testing.T) {
	url := startServer(t)
	cl := newClient(t, url, client.Config{})
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	var out testutil.SyncBuffer
	var mu sync.Mutex
	var notices io.Writer
	done := make(chan error, 1)
	go func() {
		_, err := Run(context.Background(), cl, Config{
			In: pr, Out: &out, Err: io.Discard, Interactive: true, HistoryFile: NoHistory, echo: true,
			Notices: func(w io.Writer) { mu.Lock(); notices = w; mu.Unlock() },
		})
		done <- err
	}()
	if _, err := io.WriteString(pw, "add 2"); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		if notices == nil || !strings.HasSuffix(out.String(), "> add 2") {
			return fmt.Errorf("not typed yet: %q", out.String())
		}
		return nil
	})
	mu.Lock()
	w := notices
	mu.Unlock()
	before := len(out.String())
	const line = `time=2026-12-07T23:22:48Z level=WARN msg="signal ignored: nothing here to reload" signal=hangup`
	if _, err := io.WriteString(w, line+"\n"); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if !strings.HasSuffix(out.String(), "> add 2") || len(out.String()) <= before+len(line) {
			return fmt.Errorf("prompt not drawn again: %q", out.String()[before:])
		}
		return nil
	})
	got := out.String()[before:]
	i := strings.Index(got, line)
	if i < 0 || !strings.Contains(got[:i], "\r") || strings.Contains(got[:i], "add 2") {
		t.Errorf("the notice does not start a line of its own: %q", got)
	}
	if _, err := io.WriteString(pw, " 3\rexit\r"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if notices != nil {
		t.Error("Notices was not given nil when the REPL ended")
	}
}
