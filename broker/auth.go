package broker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/bilancia/bilancia/wire"
)

// ErrInsecure reports a broker that would listen beyond loopback without
// authentication, which New refuses unless Config.Insecure says so.
var ErrInsecure = errors.New("broker: listening beyond loopback without authentication")

// DefaultAuthPoll is how often a broker with an AuthDir reads it again.
const DefaultAuthPoll = time.Second

// ServerInboxRoot is the first token of the inboxes of the roles trusted
// with replies: the dispatchers' forwards ("_INBOX.<nuid>.<worker id>"),
// and the operators' (admin) own requests. Workers may publish under it.
const ServerInboxRoot = "_INBOX"

// Permissions returns what a credential of role ("client", "worker",
// "dispatcher" or "admin") may publish and subscribe to, for subjects
// under prefix ("" = "calc"); name is a client's name. A "worker" here is
// WorkerCredential, which may act for any worker id; WorkerPermissions
// holds a worker's own credential to its ids. docs/auth.md explains each
// line. nil means everything (admin).
func Permissions(role, name, prefix string) *server.Permissions {
	s := wire.Subjects{Prefix: prefix}
	switch role {
	case "client":
		// Requests, status requests and hellos out; replies in, under its
		// own inbox prefix only.
		return allow(
			[]string{s.Request(), s.Status(), s.ClientConnect(), s.ClientDisconnect()},
			[]string{ClientInboxPrefix(name) + ".>"})
	case "worker":
		// Any worker id: every worker's subjects, heartbeats and
		// hand-overs; replies to the dispatchers' and operators' inboxes,
		// never to a client's. Claims both ways. The replies' bounce
		// subjects of workers before inbox-only replies, kept for them.
		return allow(
			[]string{s.Heartbeats(), ServerInboxRoot + ".>", WorkerInboxRoot + ".>", s.Claim(">"), s.Orphan(), s.Orphan() + ".*"},
			append([]string{s.Worker("*"), s.Discover(), s.Direct(), s.Claim(">"), s.Bounces("*"),
				WorkerInboxPrefix(FleetInbox) + ".>"}, wire.MicroSubjects(wire.WorkerService)...))
	case "dispatcher":
		// It receives the prefix's subjects and its own inboxes, never a
		// client's. It publishes forwards, cancels, discovery, events,
		// control and status requests, micro discovery, and replies under
		// the inboxes; never a heartbeat, a claim, a hand-over, a request
		// or a hello, whatever reply subject a request names (a confused
		// deputy, docs/auth.md).
		sub := append([]string{s.Root() + ".>", ServerInboxRoot + ".>"}, wire.MicroSubjects(wire.DispatcherService)...)
		pub := []string{s.Worker("*"), s.Discover(), s.Root() + ".events.>", s.CtlAll(), s.Status(), "$SRV.>",
			ServerInboxRoot + ".>", ClientInboxRoot + ".>", WorkerInboxRoot + ".>"}
		return allow(pub, sub)
	}
	return nil
}

// How long, and how many times, a worker may answer a message whose
// reply subject its permissions do not name (an operator's micro
// request, a dispatcher's second forward of one request id): longer
// than any job runs, and more times than its progress messages and
// reply need in that time. nats-server counts the deliveries of one
// reply subject against the same allowance.
const (
	WorkerResponseTTL = 10 * time.Minute
	WorkerResponseMax = 1 << 16
)

// WorkerPermissions holds the credential of worker (or pool) name, with
// replicas workers, to the subjects of its ids (WorkerIDs): heartbeats,
// replies to the dispatchers' forwards (whose reply subject ends with
// the worker's id), hand-overs and claims of its own ids, and its own
// subject; answers to anything else it received, once the reply subject
// was delivered to it (allow_responses).
func WorkerPermissions(name string, replicas int, prefix string) *server.Permissions {
	s := wire.Subjects{Prefix: prefix}
	inbox := WorkerInboxPrefix(name) + ".>"
	ids := WorkerIDs(name, replicas)
	pub := make([]string, 0, 4*len(ids)+1)
	sub := make([]string, 0, 2*len(ids)+8)
	for _, id := range ids {
		pub = append(pub, s.Heartbeat(id), ServerInboxRoot+".*."+id, s.Orphan()+"."+id, s.Claim(id))
		sub = append(sub, s.Worker(id), s.Claim(id))
	}
	pub = append(pub, inbox)
	sub = append(sub, s.Discover(), s.Direct(), inbox)
	p := allow(pub, append(sub, wire.MicroSubjects(wire.WorkerService)...))
	p.Response = &server.ResponsePermission{MaxMsgs: WorkerResponseMax, Expires: WorkerResponseTTL}
	return p
}

func allow(pub, sub []string) *server.Permissions {
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: pub},
		Subscribe: &server.SubjectPermission{Allow: sub},
	}
}

// authWatch reads an auth directory again every so often, and reloads the
// server's users when its credentials changed.
type authWatch struct {
	dir    string
	prefix string
	every  time.Duration   // <= 0: never
	cur    credentialSet   // what the server runs with
	failed map[string]bool // errors already logged, not to repeat them each poll
}

// secure applies cfg's TLS and authentication to opts, and refuses a
// listener beyond loopback without authentication unless cfg.Insecure.
// It returns the watch of cfg.AuthDir, nil without one.
func secure(cfg Config, opts *server.Options) (*authWatch, error) {
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
			CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey, CaFile: cfg.TLSCA, Verify: cfg.TLSCA != "",
		})
		if err != nil {
			return nil, fmt.Errorf("%w: tls: %w", ErrInvalidConfig, err)
		}
		opts.TLSConfig, opts.TLS, opts.TLSVerify = tc, true, cfg.TLSCA != ""
		opts.TLSTimeout = 2 // seconds, nats-server's default for a config file
	} else if cfg.TLSCA != "" {
		return nil, fmt.Errorf("%w: a TLS CA for clients needs the broker's TLS certificate and key", ErrInvalidConfig)
	}
	var w *authWatch
	if cfg.AuthDir != "" {
		if clientAuth(opts) {
			return nil, fmt.Errorf("%w: the config file sets its own authorization, and the auth directory another", ErrInvalidConfig)
		}
		if err := EnsureCredentials(cfg.AuthDir); err != nil {
			return nil, err
		}
		if err := EnsureWorkers(cfg.AuthDir, cfg.AuthWorkers); err != nil {
			return nil, err
		}
		set, err := loadCredentials(cfg.AuthDir)
		if err != nil {
			return nil, err
		}
		w = &authWatch{dir: cfg.AuthDir, prefix: cfg.AuthPrefix, every: cfg.AuthPoll, cur: set, failed: map[string]bool{}}
		if w.every == 0 {
			w.every = DefaultAuthPoll
		}
		opts.Nkeys = nkeyUsers(set, w.prefix)
		if opts.Cluster.Port != 0 && opts.Cluster.Username == "" {
			opts.Cluster.Username, opts.Cluster.Password = RouteUser, set.routeSecret
			for i, r := range opts.Routes {
				if r.User == nil {
					u := *r
					u.User = url.UserPassword(RouteUser, set.routeSecret)
					opts.Routes[i] = &u
				}
			}
		}
	}
	if cfg.Insecure {
		return w, nil
	}
	if !loopback(opts.Host) && !clientAuth(opts) {
		return nil, fmt.Errorf("%w: clients on %s", ErrInsecure, net.JoinHostPort(opts.Host, strconv.Itoa(opts.Port)))
	}
	if opts.Cluster.Port != 0 && !loopback(opts.Cluster.Host) && !routeAuth(opts) {
		return nil, fmt.Errorf("%w: routes on %s", ErrInsecure, net.JoinHostPort(opts.Cluster.Host, strconv.Itoa(opts.Cluster.Port)))
	}
	return w, nil
}

// clientAuth reports whether opts make clients authenticate.
func clientAuth(o *server.Options) bool {
	return len(o.Nkeys) > 0 || len(o.Users) > 0 || o.Username != "" || o.Authorization != "" ||
		len(o.TrustedOperators) > 0 || len(o.TrustedKeys) > 0 || o.AuthCallout != nil || o.TLSVerify
}

// routeAuth reports whether opts make routes authenticate.
func routeAuth(o *server.Options) bool {
	tc := o.Cluster.TLSConfig
	return o.Cluster.Username != "" || tc != nil && tc.ClientAuth == tls.RequireAndVerifyClientCert
}

// loopback reports whether host is only reachable from this machine.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// nkeyUsers turns credentials into the server's users, a public key once.
func nkeyUsers(set credentialSet, prefix string) []*server.NkeyUser {
	seen := make(map[string]bool, len(set.users))
	users := make([]*server.NkeyUser, 0, len(set.users))
	for _, c := range set.users {
		if seen[c.pubKey] {
			continue
		}
		seen[c.pubKey] = true
		p := Permissions(c.role, c.name, prefix)
		if c.role == "worker" && c.name != "" {
			p = WorkerPermissions(c.name, c.replicas, prefix)
		}
		users = append(users, &server.NkeyUser{Nkey: c.pubKey, Permissions: p})
	}
	return users
}

// watchAuth polls the auth directory until the broker is done.
// b.watch counts it.
func (b *Broker) watchAuth() {
	defer b.watch.Done()
	t := time.NewTicker(b.auth.every)
	defer t.Stop()
	for {
		select {
		case <-b.done:
			return
		case <-t.C:
			b.reloadAuth()
		}
	}
}

// reloadAuth reads the auth directory and, if its credentials changed,
// gives the server its new users: a client whose credential went is
// disconnected, a new one may connect. Only watchAuth calls it.
func (b *Broker) reloadAuth() {
	b.reloadMu.Lock() // Reload changes srvOpts and w.cur too
	defer b.reloadMu.Unlock()
	w := b.auth
	set, err := loadCredentials(w.dir)
	if err != nil {
		b.warnOnce("credentials not reloaded", err)
		return
	}
	if set.equal(w.cur) {
		return
	}
	for _, e := range set.skipped {
		b.warnOnce("credential left out", e)
	}
	b.mu.Lock()
	srv, base := b.srv, b.srvOpts
	b.mu.Unlock()
	opts := base.Clone()
	opts.Nkeys = nkeyUsers(set, w.prefix)
	if err := srv.ReloadOptions(opts); err != nil {
		b.warnOnce("credentials not reloaded", err)
		return
	}
	b.mu.Lock()
	b.srvOpts = opts
	b.mu.Unlock()
	w.cur = set
	clear(w.failed)
	if b.logger != nil {
		b.logger.Info("credentials reloaded", "dir", w.dir, "users", len(opts.Nkeys))
	}
}

func (b *Broker) warnOnce(msg string, err error) {
	if b.auth.failed[err.Error()] {
		return
	}
	b.auth.failed[err.Error()] = true
	if b.logger != nil {
		b.logger.Warn(msg, "dir", b.auth.dir, "err", err)
	}
}
