package broker

import (
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Defaults applied where Config leaves a field at its zero value.
const (
	DefaultHost        = "127.0.0.1"
	DefaultPort        = 4222
	DefaultClusterName = "bilancia"
	// DefaultStartTimeout bounds Start when its ctx has no deadline.
	DefaultStartTimeout = 10 * time.Second
)

// Config describes an embedded broker. The zero value is a standalone server
// on 127.0.0.1:4222 that logs nothing.
type Config struct {
	// Host is the client listen address; "" means 127.0.0.1, so that a
	// local run is not reachable from the network unless asked.
	Host string
	// Port is the client port; 0 means 4222, -1 a random free port.
	Port int
	// PortFallback picks a random free port when Port is taken instead of
	// failing; ClientURL reports the port actually bound.
	PortFallback bool
	// ServerName names the server in monitoring and cluster views; ""
	// lets nats-server use its generated server ID.
	ServerName string
	// ConfigFile is a standard nats-server configuration file. Fields set
	// here (non-zero) override its values, at New and at every Reload, as
	// nats-server's command-line flags do; the defaults of the fields left
	// zero (127.0.0.1, 4222) apply only where the file says nothing.
	ConfigFile string

	// ClusterName is the name of the route cluster; "" means no cluster
	// unless ClusterPort or Routes are set, and then "bilancia".
	ClusterName string
	// ClusterHost is the route listen address; "" means Host.
	ClusterHost string
	// ClusterPort is the route port; 0 means no route listener, -1 random.
	ClusterPort int
	// Routes are the other brokers to connect to, e.g.
	// nats-route://10.0.0.2:6222; they need a ClusterPort.
	Routes []string

	// HTTPPort serves nats-server monitoring (/varz, /connz, /routez); 0
	// means off, -1 random. It listens on Host.
	HTTPPort int
	// MaxPayload is the largest message accepted; 0 means nats-server's
	// default of 1 MiB.
	MaxPayload int32
	// PingInterval is how often the server pings its clients and routes, so
	// that a peer cut off without a TCP reset is noticed; 0 keeps
	// nats-server's defaults (2 minutes for clients, 30 s for routes). A
	// peer is dropped after 2 pings unanswered.
	PingInterval time.Duration

	// LameDuckDuration is how long LameDuck spreads the closing of the
	// clients over; 0 means ConfigFile's lame_duck_duration, else
	// nats-server's default of 2 minutes.
	LameDuckDuration time.Duration
	// LameDuckGrace is how long LameDuck waits, after telling the clients,
	// before it closes the first; it must be shorter than the duration. 0
	// means ConfigFile's lame_duck_grace_period, else nats-server's
	// default of 10 seconds.
	LameDuckGrace time.Duration

	// AuthDir turns on Bilancia's authentication (docs/auth.md): a
	// credential per role in this directory, created on first start
	// (EnsureCredentials), each allowed only its role's subjects under
	// AuthPrefix; routes authenticate with the directory's RouteSecret.
	// "" means none beyond what ConfigFile sets.
	AuthDir string
	// AuthWorkers are worker ids whose own credentials (AddWorker, one
	// worker each) are created in AuthDir with the others, where missing:
	// a fixed fleet's, written by its brokers on first start. nil: none.
	AuthWorkers []string
	// AuthPrefix is the subject prefix of the permissions; "" means
	// "calc". The roles must use the same.
	AuthPrefix string
	// AuthPoll is how often AuthDir is read again, so that client
	// credentials added (AddClient) or removed count without a restart; 0
	// means DefaultAuthPoll, -1 never.
	AuthPoll time.Duration
	// Insecure lets clients or routes connect from beyond loopback without
	// authentication; otherwise New refuses with ErrInsecure.
	Insecure bool
	// TLSCert and TLSKey serve clients over TLS; "" means plain TCP. TLSCA
	// also requires clients' certificates, signed by it.
	TLSCert, TLSKey, TLSCA string

	// Logger receives nats-server's log lines, and the broker's own about
	// its credentials; nil means silent.
	Logger *slog.Logger
	// Debug and Trace make nats-server emit its debug and protocol trace
	// lines, both at slog.LevelDebug, which Logger's handler must let
	// through.
	Debug, Trace bool
}

func buildOptions(cfg Config) (*server.Options, error) {
	for name, p := range map[string]int{"port": cfg.Port, "cluster port": cfg.ClusterPort, "http port": cfg.HTTPPort} {
		if p < -1 || p > 65535 {
			return nil, fmt.Errorf("%w: %s %d out of range", ErrInvalidConfig, name, p)
		}
	}
	if cfg.MaxPayload < 0 {
		return nil, fmt.Errorf("%w: max payload %d is negative", ErrInvalidConfig, cfg.MaxPayload)
	}
	if cfg.LameDuckDuration < 0 || cfg.LameDuckGrace < 0 {
		return nil, fmt.Errorf("%w: lame duck duration %v and grace %v must not be negative", ErrInvalidConfig, cfg.LameDuckDuration, cfg.LameDuckGrace)
	}

	opts := &server.Options{}
	if cfg.ConfigFile != "" {
		fo, err := server.ProcessConfigFile(cfg.ConfigFile)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
		opts = fo
	}

	if cfg.Host != "" {
		opts.Host = cfg.Host
	}
	if opts.Host == "" {
		opts.Host = DefaultHost
	}
	if cfg.Port != 0 {
		opts.Port = cfg.Port
	}
	if opts.Port == 0 {
		opts.Port = DefaultPort
	}
	if cfg.ServerName != "" {
		opts.ServerName = cfg.ServerName
	}
	if cfg.HTTPPort != 0 {
		opts.HTTPPort = cfg.HTTPPort
	}
	if opts.HTTPPort != 0 && opts.HTTPHost == "" {
		opts.HTTPHost = opts.Host
	}
	if cfg.PingInterval > 0 {
		opts.PingInterval = cfg.PingInterval
		opts.Cluster.PingInterval = cfg.PingInterval
	}
	if cfg.MaxPayload != 0 {
		opts.MaxPayload = cfg.MaxPayload
	}
	if cfg.LameDuckDuration != 0 {
		opts.LameDuckDuration = cfg.LameDuckDuration
	}
	if cfg.LameDuckGrace != 0 {
		opts.LameDuckGracePeriod = cfg.LameDuckGrace
	}
	opts.Debug = opts.Debug || cfg.Debug
	opts.Trace = opts.Trace || cfg.Trace

	if cfg.ClusterPort != 0 {
		opts.Cluster.Port = cfg.ClusterPort
	}
	if cfg.ClusterHost != "" {
		opts.Cluster.Host = cfg.ClusterHost
	}
	if cfg.ClusterName != "" {
		opts.Cluster.Name = cfg.ClusterName
	}
	if len(cfg.Routes) > 0 {
		routes := make([]*url.URL, 0, len(cfg.Routes))
		for _, r := range cfg.Routes {
			u, err := url.Parse(r)
			if err != nil || u.Host == "" {
				return nil, fmt.Errorf("%w: route %q is not a URL like nats-route://host:6222", ErrInvalidConfig, r)
			}
			routes = append(routes, u)
		}
		opts.Routes = routes
	}
	switch {
	case opts.Cluster.Port != 0:
		if opts.Cluster.Host == "" {
			opts.Cluster.Host = opts.Host
		}
		if opts.Cluster.Name == "" {
			opts.Cluster.Name = DefaultClusterName
		}
	case len(opts.Routes) > 0:
		// Without a listener nats-server would never solicit the routes.
		return nil, fmt.Errorf("%w: routes need a cluster port", ErrInvalidConfig)
	case opts.Cluster.Name != "":
		return nil, fmt.Errorf("%w: cluster name %q needs a cluster port", ErrInvalidConfig, opts.Cluster.Name)
	}

	// The embedder owns signals and logging: NoLog also keeps a reload
	// from replacing the logger with nats-server's own.
	opts.NoSigs, opts.NoLog = true, true
	return opts, nil
}
