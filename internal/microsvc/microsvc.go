// Package microsvc answers NATS micro discovery (ADR-32: $SRV.PING,
// $SRV.INFO, $SRV.STATS, each for all services, by name, and by name and
// id) for a service whose endpoints are served by plain subscriptions
// elsewhere, so that `nats micro ls|info|stats|ping` list it. The
// replies are nats.go micro's own types; each endpoint's figures come
// from the caller's counters when asked. No request passes through here:
// micro.AddService would route every request through its handler, its
// lock and its stats, and its STATS reply cannot take counts from
// outside.
package microsvc

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nuid"
)

// Counts are an endpoint's figures for $SRV.STATS.
type Counts struct {
	Requests, Errors uint64
	Processing       time.Duration // the requests' total time
}

// Endpoint describes one endpoint that is served elsewhere.
type Endpoint struct {
	Name       string // as micro allows: letters, digits, '-' and '_'
	Subject    string
	QueueGroup string // "" = none
	Metadata   map[string]string
	Counts     func() Counts // nil = zeros; called for each STATS request
}

// Config describes the service.
type Config struct {
	Name        string // as micro allows: letters, digits, '-' and '_'
	ID          string // "" or not a name micro allows = a new nuid
	Version     string // SemVer, as micro requires
	Description string
	Metadata    map[string]string
	Endpoints   []Endpoint
	// Subscribe makes the service's subscriptions, each message to go to
	// handle: for the workers of a process that share their goroutines.
	// nil = nc.Subscribe.
	Subscribe func(subject string, handle nats.MsgHandler) (*nats.Subscription, error)
	// ReplyOK tells whether a request's reply subject may be answered;
	// it counts and logs what it refuses. nil = every subject.
	ReplyOK func(subject string) bool
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9\-_]+$`)

// Service answers discovery requests until Stop.
type Service struct {
	nc      *nats.Conn
	cfg     Config
	started time.Time
	ping    []byte
	info    []byte

	mu   sync.Mutex
	subs []*nats.Subscription
}

// Start validates cfg and answers discovery requests.
func Start(nc *nats.Conn, cfg Config) (*Service, error) {
	if !nameRE.MatchString(cfg.Name) {
		return nil, fmt.Errorf("microsvc: invalid service name %q", cfg.Name)
	}
	if cfg.Version == "" {
		return nil, errors.New("microsvc: a version is required")
	}
	for _, e := range cfg.Endpoints {
		if !nameRE.MatchString(e.Name) || e.Subject == "" {
			return nil, fmt.Errorf("microsvc: invalid endpoint %q on %q", e.Name, e.Subject)
		}
	}
	if !nameRE.MatchString(cfg.ID) {
		cfg.ID = nuid.Next()
	}
	s := &Service{nc: nc, cfg: cfg, started: time.Now().UTC()}
	s.ping, _ = json.Marshal(micro.Ping{ServiceIdentity: s.identity(), Type: micro.PingResponseType})
	s.info, _ = json.Marshal(s.Info())
	// Three subscriptions, the verb a wildcard: "$SRV.<verb>" for every
	// service, then by name, then by name and id.
	for _, subj := range []string{micro.APIPrefix + ".*", micro.APIPrefix + ".*." + cfg.Name, micro.APIPrefix + ".*." + cfg.Name + "." + cfg.ID} {
		subscribe := cfg.Subscribe
		if subscribe == nil {
			subscribe = nc.Subscribe
		}
		sub, err := subscribe(subj, s.answer)
		if err != nil {
			s.Stop()
			return nil, fmt.Errorf("microsvc: subscribe %s: %w", subj, err)
		}
		s.subs = append(s.subs, sub)
	}
	return s, nil
}

// answer replies to a discovery request, its verb the subject's second
// token; any other verb gets no reply, as from micro.
func (s *Service) answer(m *nats.Msg) {
	if m.Reply == "" || (s.cfg.ReplyOK != nil && !s.cfg.ReplyOK(m.Reply)) {
		return
	}
	verb, _, _ := strings.Cut(m.Subject[len(micro.APIPrefix)+1:], ".")
	switch verb {
	case micro.PingVerb.String():
		_ = m.Respond(s.ping)
	case micro.InfoVerb.String():
		_ = m.Respond(s.info)
	case micro.StatsVerb.String():
		b, _ := json.Marshal(s.Stats())
		_ = m.Respond(b)
	}
}

// ID is the service instance's id.
func (s *Service) ID() string { return s.cfg.ID }

func (s *Service) identity() micro.ServiceIdentity {
	return micro.ServiceIdentity{Name: s.cfg.Name, ID: s.cfg.ID, Version: s.cfg.Version, Metadata: maps.Clone(s.cfg.Metadata)}
}

// Info is the service's $SRV.INFO reply.
func (s *Service) Info() micro.Info {
	eps := make([]micro.EndpointInfo, 0, len(s.cfg.Endpoints))
	for _, e := range s.cfg.Endpoints {
		eps = append(eps, micro.EndpointInfo{Name: e.Name, Subject: e.Subject, QueueGroup: e.QueueGroup, Metadata: maps.Clone(e.Metadata)})
	}
	return micro.Info{ServiceIdentity: s.identity(), Type: micro.InfoResponseType, Description: s.cfg.Description, Endpoints: eps}
}

// Stats is the service's $SRV.STATS reply, from the endpoints' counters
// now.
func (s *Service) Stats() micro.Stats {
	st := micro.Stats{ServiceIdentity: s.identity(), Type: micro.StatsResponseType, Started: s.started,
		Endpoints: make([]*micro.EndpointStats, 0, len(s.cfg.Endpoints))}
	for _, e := range s.cfg.Endpoints {
		var c Counts
		if e.Counts != nil {
			c = e.Counts()
		}
		es := &micro.EndpointStats{Name: e.Name, Subject: e.Subject, QueueGroup: e.QueueGroup,
			NumRequests: int(c.Requests), NumErrors: int(c.Errors), ProcessingTime: c.Processing}
		if c.Requests > 0 {
			es.AverageProcessingTime = c.Processing / time.Duration(c.Requests)
		}
		st.Endpoints = append(st.Endpoints, es)
	}
	return st
}

// Stop unsubscribes: the service no longer answers. Safe to call more
// than once.
func (s *Service) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sub := range s.subs {
		_ = sub.Unsubscribe()
	}
	s.subs = nil
}
