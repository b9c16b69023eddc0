package repl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/chzyer/readline"

	"github.com/bilancia/bilancia/client"
)

const (
	// prompt is the interactive prompt.
	prompt = "> "
	// historyLimit bounds the history file, in lines.
	historyLimit = 1000
	// NoHistory as Config.HistoryFile keeps no history file.
	NoHistory = "none"
)

// runInteractive reads with readline. Each command runs in the background
// and prints through readline's stdout wrapper, which redraws the prompt and
// what is typed so far below every line it prints.
func runInteractive(ctx context.Context, cl *client.Client, cfg Config) (int, error) {
	// Our own cancelable reader, closed on the way out: readline's Close
	// alone would leave its reading goroutine blocked until the next key.
	// Beneath it, pasted text reaches readline as one key (paste.go).
	paste := newPasteReader(cfg.In)
	stdin := readline.NewCancelableStdin(paste)
	search := &searchFix{next: paste}
	rlcfg := &readline.Config{
		Prompt:              prompt,
		HistoryFile:         historyPath(cfg.HistoryFile),
		HistoryLimit:        historyLimit,
		HistorySearchFold:   true,
		InterruptPrompt:     "^C",
		EOFPrompt:           "exit",
		Stdin:               stdin,
		Stdout:              cfg.Out,
		Stderr:              cfg.Err,
		Listener:            search,
		FuncFilterInputRune: search.filter,
		// Without a terminal the width is unknown (-1); assume 80 columns.
		FuncGetWidth: func() int {
			if w := readline.GetScreenWidth(); w > 0 {
				return w
			}
			return 80
		},
		ForceUseInteractive: cfg.echo,
	}
	if cfg.In != os.Stdin {
		// Not reading the terminal (tests, a remote session): leave its
		// mode and its resize signal alone.
		rlcfg.FuncMakeRaw = func() error { return nil }
		rlcfg.FuncExitRaw = func() error { return nil }
		rlcfg.FuncOnWidthChanged = func(func()) {}
	}
	rl, err := readline.NewEx(rlcfg)
	if err != nil {
		stdin.Close()
		return 0, fmt.Errorf("repl: readline: %w", err)
	}
	search.rl = rl // before the first key: Readline below starts the reading
	closeRL := sync.OnceFunc(func() {
		stdin.Close()
		rl.Close()
	})
	defer closeRL()

	s := newSession(cl, cfg, rl.Stdout())
	var stopCalls func()
	s.calls, stopCalls = afterGrace(ctx, cfg.Grace)
	defer stopCalls()
	s.out.fresh = true
	if cfg.Notices != nil {
		cfg.Notices(s.out)
		defer cfg.Notices(nil)
	}
	s.background = true
	s.sem = make(chan struct{}, maxBackground)
	if cfg.Progress {
		// The progress of random runs shows in the prompt, which readline
		// redraws below every reply.
		s.progress.show = func(line string) {
			if line != "" {
				line = s.pal.dim(line) + " "
			}
			rl.SetPrompt(line + prompt)
			rl.Refresh()
		}
	}

	// Readline blocks in a read that only Close interrupts.
	quit := make(chan struct{})
	defer close(quit)
	go func() {
		select {
		case <-ctx.Done():
			closeRL()
		case <-quit:
		}
	}()

	for ctx.Err() == nil {
		line, err := rl.Readline()
		if errors.Is(err, readline.ErrInterrupt) {
			if line == "" {
				s.out.print(hint)
			}
			continue // with text, Ctrl-C only clears the line
		}
		if err != nil { // io.EOF: Ctrl-D, or Close after ctx ended
			break
		}
		if s.exec(ctx, line) {
			break
		}
	}
	s.leave()
	if n := s.inflight.Load(); n > 0 && (ctx.Err() == nil || cfg.Grace > 0) {
		s.out.print(fmt.Sprintf("waiting for %d request(s) in flight…", n))
	}
	s.wg.Wait()
	return int(s.failed.Load()), nil
}

// historyPath is the history file for Config.HistoryFile: "" means
// $XDG_STATE_HOME/bilancia/history when XDG_STATE_HOME is set, else
// ~/.bilancia_history; NoHistory means none (""). The file is created
// readable by its owner only: commands may hold what others should not see.
// Errors are ignored: history is a convenience.
func historyPath(file string) string {
	switch file {
	case NoHistory:
		return ""
	case "":
		if dir := os.Getenv("XDG_STATE_HOME"); dir != "" {
			file = filepath.Join(dir, "bilancia", "history")
		} else if home, err := os.UserHomeDir(); err == nil {
			file = filepath.Join(home, ".bilancia_history")
		} else {
			return ""
		}
	}
	_ = os.MkdirAll(filepath.Dir(file), 0o700)
	if f, err := os.OpenFile(file, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600); err == nil {
		f.Close()
	}
	return file
}
