package broker

import "fmt"

// Reload reads the configuration again, as nats-server does on SIGHUP: the
// ConfigFile with the Config's own fields over it, and the files the
// Config names (AuthDir's credentials, the TLS certificate and key), and
// applies it with nats-server's reload. Without a ConfigFile only those
// files change anything. An option nats-server cannot change while running
// (the client port, for one) makes it fail; on any error the broker runs on
// as it was.
func (b *Broker) Reload() error {
	b.reloadMu.Lock()
	defer b.reloadMu.Unlock()
	b.mu.Lock()
	srv, running, started := b.srv, b.srvOpts, b.started && !b.closed
	b.mu.Unlock()
	if !started {
		return fmt.Errorf("%w: reload of a broker not running", ErrClosed)
	}

	opts, err := buildOptions(b.cfg)
	if err != nil {
		return err
	}
	aw, err := secure(b.cfg, opts)
	if err != nil {
		return err
	}
	// The port New was given may have been replaced by a random one
	// (PortFallback): that one stays.
	if opts.Port == b.opts.Port {
		opts.Port = running.Port
	}
	if err := srv.ReloadOptions(opts.Clone()); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if opts.Debug != running.Debug || opts.Trace != running.Trace {
		b.mu.Lock()
		la := b.log
		b.mu.Unlock()
		srv.SetLoggerV2(la, opts.Debug, opts.Trace, false)
	}
	b.mu.Lock()
	b.srvOpts = opts
	b.mu.Unlock()
	if b.auth != nil {
		// The users the server now has; the watch compares the directory
		// with them from here on.
		b.auth.cur = aw.cur
		clear(b.auth.failed)
	}
	return nil
}
