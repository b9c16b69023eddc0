package main

import (
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
)

// action is what an operator's signal asks of a running role other than
// to stop (SIGINT and SIGTERM end globals.ctx). As with nats-server,
// SIGHUP reloads the configuration, SIGUSR1 reopens the log and SIGUSR2
// enters lame duck mode; signals_unix.go maps them, elsewhere there are
// none.
type action int

const (
	reloadConfig action = iota
	reopenLog
	enterLameDuck
)

var actionNames = [...]string{reloadConfig: "reload", reopenLog: "reopen a log", enterLameDuck: "enter lame duck mode"}

// signals is the process's one receiver of the action signals. It runs
// while a role has a handler registered (onSignal), and then catches all
// of them: a signal no role handles is logged and ignored instead of
// ending the process.
var signals struct {
	mu       sync.Mutex
	ch       chan os.Signal // nil while no handler is registered
	done     chan struct{}  // closed when the loop reading ch has ended
	handlers map[*sigHandler]bool
}

type sigHandler struct {
	a action
	f func()
}

// signalLog hears the signals no role handles: the running role's own
// logger (useSignalLog), so that the line reads as its others do; nil =
// text lines on stderr, as the roles' own.
var signalLog atomic.Pointer[slog.Logger]

// useSignalLog makes l the logger of ignored signals until restore.
func useSignalLog(l *slog.Logger) (restore func()) {
	prev := signalLog.Swap(l)
	return func() { signalLog.CompareAndSwap(l, prev) }
}

func signalLogger() *slog.Logger {
	if l := signalLog.Load(); l != nil {
		return l
	}
	return slog.New(slog.NewTextHandler(os.Stderr, nil))
}

// onSignal calls f on the signal loop every time a's signal arrives,
// until stop is called. f must return soon, and must not call stop.
func onSignal(a action, f func()) (stop func()) {
	if len(actionSignals) == 0 {
		return func() {}
	}
	h := &sigHandler{a, f}
	signals.mu.Lock()
	defer signals.mu.Unlock()
	if signals.handlers == nil {
		signals.handlers = map[*sigHandler]bool{}
	}
	signals.handlers[h] = true
	if signals.ch == nil {
		signals.ch, signals.done = make(chan os.Signal, len(actionSignals)), make(chan struct{})
		for sig := range actionSignals {
			signal.Notify(signals.ch, sig)
		}
		go signalLoop(signals.ch, signals.done)
	}
	return sync.OnceFunc(func() {
		signals.mu.Lock()
		delete(signals.handlers, h)
		ch, done := signals.ch, signals.done
		if len(signals.handlers) > 0 || ch == nil {
			signals.mu.Unlock()
			return
		}
		// The last handler gone: the signals' default actions again.
		signals.ch, signals.done = nil, nil
		signal.Stop(ch)
		close(ch)
		signals.mu.Unlock()
		<-done
	})
}

// signalLoop calls the handlers of each signal received on ch, one signal
// after the other, until ch is closed.
func signalLoop(ch <-chan os.Signal, done chan<- struct{}) {
	defer close(done)
	for sig := range ch {
		a := actionSignals[sig]
		var fs []func()
		signals.mu.Lock()
		for h := range signals.handlers {
			if h.a == a {
				fs = append(fs, h.f)
			}
		}
		signals.mu.Unlock()
		if len(fs) == 0 {
			signalLogger().Warn("signal ignored: nothing here to "+actionNames[a], "signal", sig.String())
		}
		for _, f := range fs {
			f()
		}
	}
}

// poke returns a handler that makes a receive from ch ready, once however
// many signals arrive before it.
func poke(ch chan<- struct{}) func() {
	return func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
