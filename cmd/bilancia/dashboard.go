package main

import (
	"github.com/bilancia/bilancia/dashboard"
)

// startDashboard serves r's dashboard on addr (dispatcher --http), with
// the cluster's other dispatchers asked over r's connection and latency
// taken from its metrics. The page has no authentication: beyond
// loopback, the log says so.
func startDashboard(r *runningDispatcher, addr, prefix string) (*dashboard.Server, error) {
	s, err := dashboard.Start(dashboard.Config{Addr: addr, Dispatcher: r.Dispatcher, Conn: r.conns[0], Prefix: prefix,
		Gatherer: r.Registry()})
	if err != nil {
		return nil, err
	}
	r.events.Info("dashboard", "url", s.URL())
	if !s.Loopback() {
		r.events.Warn("the dashboard listens beyond loopback, on "+s.Addr()+", and has no authentication: whoever reaches it can see the workers and drain them", "url", s.URL())
	}
	return s, nil
}
