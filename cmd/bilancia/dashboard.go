package main

import (
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
