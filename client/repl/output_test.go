package repl

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

func TestColors(t *testing.T) {
	ok := &client.Result{Worker: "w-3f2a", Sends: 1}
	ok.Reply.Result = []byte("5")
	p := palette{on: true}
	if got, want := p.reply("add 2 3", ok, 400*time.Microsecond, nil),
		sgrDim+"[w-3f2a]"+sgrReset+" add 2 3 = "+sgrGreen+"5"+sgrReset+"                  "+sgrDim+"(0.4 ms)"+sgrReset; got != want {
		t.Errorf("reply = %q; want %q", got, want)
	}
	if got, want := p.reply("div 1 0", nil, 400*time.Microsecond, wire.NewError(400, "division by zero")),
		sgrRed+"[error 400] div 1 0: division by zero"+sgrReset+" "+sgrDim+"(0.4 ms)"+sgrReset; got != want {
		t.Errorf("error reply = %q; want %q", got, want)
	}
	// Colours off: the plain text, byte for byte.
	if got, want := (palette{}).reply("add 2 3", ok, 400*time.Microsecond, nil), formatReply("add 2 3", ok, 400*time.Microsecond, nil); got != want || strings.Contains(got, "\x1b") {
		t.Errorf("reply without colours = %q; want %q", got, want)
	}

	// Config.Color reaches the replies; without it there are none.
	url := startServer(t)
	startResponder(t, url, "w-a")
	cl := newClient(t, url, client.Config{})
	for _, color := range []bool{false, true} {
		var out testutil.SyncBuffer
		RunCommandsWith(context.Background(), cl, []string{"add 2 3", "div 1 0", "random 3"}, Config{Out: &out, Color: color})
		if got := strings.Contains(out.String(), "\x1b["); got != color {
			t.Errorf("Color %v: output holds escape sequences = %v:\n%q", color, got, out.String())
		}
	}
}

// A random run long enough shows a progress line on the terminal, redrawn
// in place, and removes it before the summary.
func TestRandomProgress(t *testing.T) {
	url := startServer(t)
	startResponder(t, url, "w-a")
	cl := newClient(t, url, client.Config{})
	var out testutil.SyncBuffer
	// Run until the progress line was drawn at least once, whatever the
	// machine's speed: one request in flight, and a large N that stops
	// when the session leaves.
	s := newSession(cl, Config{Progress: true, Concurrency: 1}, &out)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.random(context.Background(), maxRandom, true)
	}()
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if !strings.Contains(out.String(), clearLine+"random: ") {
			return errNotYet
		}
		return nil
	})
	s.leave()
	<-done
	got := out.String()
	i := strings.LastIndex(got, clearLine)
	if summary := got[i+len(clearLine):]; !strings.Contains(summary, " ok, 0 failed in ") || strings.Contains(summary, "random: ") {
		t.Errorf("the summary does not follow a cleared line: %q", summary)
	}

	// Without a terminal there is no progress line to draw.
	if s := newSession(cl, Config{}, &out); s.progress.show != nil {
		t.Errorf("a progress line without Config.Progress")
	}
}

var errNotYet = errors.New("not yet")

func TestHistoryPath(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	t.Setenv("XDG_STATE_HOME", "")
	if got, want := historyPath(""), filepath.Join(dir, ".bilancia_history"); got != want {
		t.Errorf("historyPath(\"\") = %q; want %q", got, want)
	}
	state := filepath.Join(dir, "state")
	t.Setenv("XDG_STATE_HOME", state)
	want := filepath.Join(state, "bilancia", "history")
	if got := historyPath(""); got != want {
		t.Errorf("historyPath(\"\") with XDG_STATE_HOME = %q; want %q", got, want)
	}
	fi, err := os.Stat(want)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("history file mode = %v; want 0600", fi.Mode().Perm())
	}
	if got := historyPath(NoHistory); got != "" {
		t.Errorf("historyPath(NoHistory) = %q; want \"\"", got)
	}
	own := filepath.Join(dir, "mine")
	if got := historyPath(own); got != own {
		t.Errorf("historyPath(%q) = %q", own, got)
	}
}

// In the interactive REPL the progress line is the prompt, redrawn below
// every reply, and the plain prompt comes back when the run ends.
func TestInteractiveProgress(t *testing.T) {
	url := startServer(t)
	startResponder(t, url, "w-a")
	cl := newClient(t, url, client.Config{})
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	var out testutil.SyncBuffer
	done := make(chan error, 1)
	go func() {
		_, err := Run(context.Background(), cl, Config{
			In: pr, Out: &out, Err: io.Discard, Interactive: true, HistoryFile: NoHistory,
			Progress: true, Concurrency: 1, echo: true,
		})
		done <- err
	}()
	if _, err := io.WriteString(pw, "random 1000000 -q\r"); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if !strings.Contains(out.String(), "random: ") || !strings.Contains(out.String(), " of 1000000, ") {
			return errNotYet
		}
		return nil
	})
	if _, err := io.WriteString(pw, "exit\r"); err != nil { // stops the run early
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	got := out.String()
	i := strings.LastIndex(got, "random: ")
	if !strings.Contains(got[i:], "stopped early") {
		t.Errorf("no summary after the last progress line:\n%q", got[i:])
	}
}
