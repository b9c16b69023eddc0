package broker

import (
	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"
)

// Prometheus metrics: the embedded server's figures, read from its Varz
// when scraped, so that they cost the message path nothing.

// varzMetric is one figure of Varz.
type varzMetric struct {
	desc *prometheus.Desc
	kind prometheus.ValueType
	// value reads it from v.
	value func(v *server.Varz) float64
}

var varzMetrics = []varzMetric{
	{desc("connections", "Client connections open."), prometheus.GaugeValue, func(v *server.Varz) float64 { return float64(v.Connections) }},
	{desc("connections_total", "Client connections accepted since the broker started."), prometheus.CounterValue, func(v *server.Varz) float64 { return float64(v.TotalConnections) }},
	{desc("routes", "Route connections to other brokers of the cluster."), prometheus.GaugeValue, func(v *server.Varz) float64 { return float64(v.Routes) }},
	{desc("leafnodes", "Leaf node connections."), prometheus.GaugeValue, func(v *server.Varz) float64 { return float64(v.Leafs) }},
	{desc("subscriptions", "Subscriptions held, of clients and of routes."), prometheus.GaugeValue, func(v *server.Varz) float64 { return float64(v.Subscriptions) }},
	{desc("received_messages_total", "Messages received from clients, routes and leaf nodes."), prometheus.CounterValue, func(v *server.Varz) float64 { return float64(v.InMsgs) }},
	{desc("sent_messages_total", "Messages sent to clients, routes and leaf nodes."), prometheus.CounterValue, func(v *server.Varz) float64 { return float64(v.OutMsgs) }},
	{desc("received_bytes_total", "Message bytes (headers and payload) received from clients, routes and leaf nodes."), prometheus.CounterValue, func(v *server.Varz) float64 { return float64(v.InBytes) }},
	{desc("sent_bytes_total", "Message bytes (headers and payload) sent to clients, routes and leaf nodes."), prometheus.CounterValue, func(v *server.Varz) float64 { return float64(v.OutBytes) }},
	{desc("client_received_messages_total", "Messages received from clients alone."), prometheus.CounterValue, func(v *server.Varz) float64 { return float64(v.InClientMsgs) }},
	{desc("client_sent_messages_total", "Messages sent to clients alone."), prometheus.CounterValue, func(v *server.Varz) float64 { return float64(v.OutClientMsgs) }},
	{desc("slow_consumers_total", "Connections closed for falling behind on what the broker sent them."), prometheus.CounterValue, func(v *server.Varz) float64 { return float64(v.SlowConsumers) }},
	{desc("stale_connections_total", "Connections closed for not answering pings."), prometheus.CounterValue, func(v *server.Varz) float64 { return float64(v.StaleConnections) }},
	{desc("stalled_clients_total", "Times a client's writes were held back because its connection's buffer was full."), prometheus.CounterValue, func(v *server.Varz) float64 { return float64(v.StalledClients) }},
}

func desc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc("bilancia_broker_"+name, help, nil, nil)
}

// Collector returns a collector of the broker's figures, read from the
// running server's Varz at each scrape; a broker not running gives none.
func (b *Broker) Collector() prometheus.Collector { return brokerCollector{b} }

type brokerCollector struct{ b *Broker }

func (c brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range varzMetrics {
		ch <- m.desc
	}
}

func (c brokerCollector) Collect(ch chan<- prometheus.Metric) {
	srv := c.b.Server()
	if srv == nil || !srv.Running() {
		return
	}
	v, err := srv.Varz(nil)
	if err != nil {
		for _, m := range varzMetrics {
			ch <- prometheus.NewInvalidMetric(m.desc, err)
		}
		return
	}
	for _, m := range varzMetrics {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(v))
	}
}
