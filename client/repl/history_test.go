package repl

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/internal/testutil"
)

// TestReverseSearchHistory: a line of an earlier session recalled with
// Ctrl-R and sent runs and is saved to the history as itself, not as an
// empty line (a readline bug: searchFix).
func TestReverseSearchHistory(t *testing.T) {
	url := startServer(t)
	startResponder(t, url, "w-a")
	cl := newClient(t, url, client.Config{})
	hist := t.TempDir() + "/history"
	if err := os.WriteFile(hist, []byte("add 2 3\nmul 6 7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	var out testutil.SyncBuffer
	done := make(chan error, 1)
	go func() {
		_, err := Run(context.Background(), cl, Config{
			In: pr, Out: &out, Err: io.Discard, Interactive: true, HistoryFile: hist, echo: true,
		})
		done <- err
	}()
	typeIn := func(s string) {
		t.Helper()
		if _, err := io.WriteString(pw, s); err != nil {
			t.Fatalf("type %q: %v", s, err)
		}
	}
	// Key by key, as typed: Ctrl-R, "ad", Enter.
	for _, k := range []string{"\x12", "a", "d", "\r"} {
		typeIn(k)
	}
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if !strings.Contains(out.String(), "[w-a] add 2 3 = 5") {
			return errNotYet
		}
		return nil
	})
	typeIn("exit\r")
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	b, err := os.ReadFile(hist)
	if err != nil {
		t.Fatal(err)
	}
	// "exit" is saved too, unless the REPL closed readline first.
	if got, want := strings.TrimSuffix(string(b), "exit\n"), "add 2 3\nmul 6 7\nadd 2 3\n"; got != want {
		t.Errorf("history = %q; want %q", got, want)
	}
}
