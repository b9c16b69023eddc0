package main

import (
	"errors"
	"fmt"
	"net"

	"github.com/bilancia/bilancia/dashboard"
)

// upDashboardAddr is where up serves its dashboard unless told otherwise.
const upDashboardAddr = "127.0.0.1:8080"

// defaultDashboardAddr is upDashboardAddr, or a free loopback port when
// another program holds it, as up does with the broker's port.
func defaultDashboardAddr() string {
	ln, err := net.Listen("tcp", upDashboardAddr)
	if err != nil {
		return "127.0.0.1:0"
	}
	ln.Close()
	return upDashboardAddr
}

// startDashboard serves r's dashboard on addr (dispatcher --http), with
// the cluster's other dispatchers asked over r's connection and latency
// taken from its metrics. Beyond loopback it needs auth's token or client
// certificates, or --http-insecure, which the log warns of.
func startDashboard(r *runningDispatcher, addr, prefix string, auth *DashboardAuthFlags) (*dashboard.Server, error) {
	cfg := dashboard.Config{Addr: addr, Dispatcher: r.Dispatcher, Conn: r.conns[0], Prefix: prefix, Gatherer: r.Registry()}
	if err := auth.config(&cfg); err != nil {
		return nil, err
	}
	s, err := dashboard.Start(cfg)
	if err != nil {
		return nil, dashboardError(err)
	}
	r.events.Info("dashboard", "url", s.URL())
	if !s.Loopback() && cfg.Token == "" && cfg.TLSCA == "" {
		r.events.Warn("the dashboard listens beyond loopback, on "+s.Addr()+", and has no authentication (--http-insecure): whoever reaches it can see the workers and drain them", "url", s.URL())
	}
	return s, nil
}

// checkDashboard refuses the dashboard's flags before anything starts.
func (f *DispatcherFlags) checkDashboard() error {
	if f.HTTP == "" {
		return nil
	}
	cfg := dashboard.Config{Addr: f.HTTP}
	err := f.DashboardAuthFlags.config(&cfg)
	if err == nil {
		err = dashboard.Check(cfg)
	}
	return dashboardError(err)
}

// dashboardError says what to do about an insecure dashboard.
func dashboardError(err error) error {
	if errors.Is(err, dashboard.ErrInsecure) {
		return fmt.Errorf("%w: give it --http-token-file FILE or --http-tls-ca (docs/auth.md), listen on 127.0.0.1, or add --http-insecure", err)
	}
	return err
}
