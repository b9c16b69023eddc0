package loadcheck

import (
	"context"
	"fmt"
	"time"
)

// The fault driver: Inject once the load reaches Config.InjectAt, Heal
// Config.HealAfter later, both beside the load, which goes on meanwhile.

// faultRun is the fault's progress; its times are written before done is
// closed.
type faultRun struct {
	injected, injectDone, healed time.Time
	injectTook, healTook         time.Duration
	err                          error
	done                         chan struct{} // nil: never started
}

func (f *faultRun) wait() {
	if f.done != nil {
		<-f.done
	}
}

// faultTimeout bounds each of Inject and Heal.
const faultTimeout = 60 * time.Second

// start runs Inject, then Heal after HealAfter, on their own goroutine, so
// that the load goes on meanwhile.
func (f *faultRun) start(ctx context.Context, cfg *Config) {
	f.done = make(chan struct{})
	f.injected = time.Now()
	go func() {
		defer close(f.done)
		cfg.Logf("injecting %s", cfg.Fault)
		ictx, cancel := context.WithTimeout(ctx, faultTimeout)
		err := cfg.Inject(ictx)
		cancel()
		f.injectDone = time.Now()
		f.injectTook = f.injectDone.Sub(f.injected)
		if err != nil {
			f.err = fmt.Errorf("inject %s: %w", cfg.Fault, err)
			return
		}
		if cfg.Heal == nil {
			return
		}
		t := time.NewTimer(time.Until(f.injected.Add(cfg.HealAfter)))
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			f.err = ctx.Err()
			return
		}
		cfg.Logf("healing %s", cfg.Fault)
		f.healed = time.Now()
		hctx, cancel := context.WithTimeout(ctx, faultTimeout)
		defer cancel()
		if err := cfg.Heal(hctx); err != nil {
			f.err = fmt.Errorf("heal %s: %w", cfg.Fault, err)
		}
		f.healTook = time.Since(f.healed)
	}()
}
