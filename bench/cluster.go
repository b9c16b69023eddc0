package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker"
	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/internal/supervise"
	"github.com/bilancia/bilancia/wire"
)

// cluster is the child processes of a comparison.
type cluster struct {
	cc      *CompareConfig
	dir     string
	tempDir bool
	url     string
	broker  *supervise.Process
	mu      sync.Mutex           // guards workers, which a restart (scenario.go) changes during a run
	workers []*supervise.Process // in order, the last the one a scenario disturbs
	// workerArgs are each worker's flags, to start it again.
	workerArgs [][]string
	disp       *supervise.Process
	dispID     string
	dispN      int
	dispFor    string // the running dispatcher's strategy
	ctl        *client.Client
}

// readyEvery is how often the cluster checks whether a child is ready.
const readyEvery = 20 * time.Millisecond

// stopGrace is how long a child may take to stop after SIGTERM before it
// is killed.
const stopGrace = 5 * time.Second

func (c *cluster) event(msg string) {
	if c.cc.Event != nil {
		c.cc.Event(msg)
	}
}

func (c *cluster) start(ctx context.Context) error {
	c.dir = c.cc.Dir
	if c.dir == "" {
		d, err := os.MkdirTemp("", "bilancia-bench-")
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		c.dir, c.tempDir = d, true
	} else if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	c.url = "nats://127.0.0.1:" + strconv.Itoa(port)
	args := []string{"broker", "--host", "127.0.0.1", "--port", strconv.Itoa(port)}
	if c.cc.Auth {
		args = append(args, "--auth", filepath.Join(c.dir, "auth"))
		if c.cc.Load.Prefix != "" {
			args = append(args, "--prefix", c.cc.Load.Prefix)
		}
	}
	if c.cc.InBroker {
		subj := wire.Subjects{Prefix: c.cc.Load.Prefix}
		args = append(args, "--dispatcher", "--id", inBrokerID, "--subject", subj.InBroker(),
			"--strategy", c.cc.inBrokerStrategy(),
			"--log", filepath.Join(c.dir, inBrokerID+"-loadbalancer.log"))
		if c.cc.Load.Prefix != "" {
			args = append(args, "--prefix", c.cc.Load.Prefix)
		}
	}
	if c.broker, err = c.spawn("broker", args...); err != nil {
		return err
	}
	if err := c.waitBroker(ctx); err != nil {
		return err
	}
	for i := range c.cc.Workers {
		id := fmt.Sprintf("bw-%d", i+1)
		args := append([]string{"worker", "--nats", c.url, "--id", id, "--serve-direct"}, c.nkey(broker.WorkerCredential)...)
		if c.cc.Load.Prefix != "" {
			args = append(args, "--prefix", c.cc.Load.Prefix)
		}
		if i < len(c.cc.WorkerDelays) && c.cc.WorkerDelays[i] > 0 {
			args = append(args, "--delay", c.cc.WorkerDelays[i].String())
		}
		if c.cc.WorkerConcurrency > 0 {
			args = append(args, "--concurrency", strconv.Itoa(c.cc.WorkerConcurrency))
		}
		if i < len(c.cc.WorkerFailRates) && c.cc.WorkerFailRates[i] > 0 {
			args = append(args, "--fail-rate", strconv.FormatFloat(c.cc.WorkerFailRates[i], 'g', -1, 64))
		}
		w, err := c.spawn("worker "+id, args...)
		if err != nil {
			return err
		}
		c.workers = append(c.workers, w)
		c.workerArgs = append(c.workerArgs, args)
	}
	opts, err := c.credential(broker.ClientCredential)
	if err != nil {
		return err
	}
	c.ctl, err = client.Connect(client.Config{URL: c.url, Prefix: c.cc.Load.Prefix, Name: "bench-control", Options: opts})
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if c.cc.InBroker {
		return c.waitSees(ctx, inBrokerID)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("bench: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// spawn starts a child with its output in the cluster's directory. Its
// environment is supervise.Env(): without BILANCIA_* and NATS_* settings,
// so that what it runs is what its flags say (request logging on, default
// timeouts, this cluster's broker), whatever the caller's shell holds.
func (c *cluster) spawn(name string, args ...string) (*supervise.Process, error) {
	p, err := supervise.Start(supervise.Config{
		Name: name, Path: c.cc.Exe, Args: args,
		Output: filepath.Join(c.dir, strings.ReplaceAll(name, " ", "-")+".out"),
	})
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	c.event(fmt.Sprintf("started %s (pid %d): %s", name, p.PID(), strings.Join(args, " ")))
	return p, nil
}

// children is every child started and not replaced, the broker first.
func (c *cluster) children() []*supervise.Process {
	var all []*supervise.Process
	if c.broker != nil {
		all = append(all, c.broker)
	}
	if c.disp != nil {
		all = append(all, c.disp)
	}
	return append(all, c.workerList()...)
}

// workerList is the workers now.
func (c *cluster) workerList() []*supervise.Process {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.workers)
}

// worker is worker i now.
func (c *cluster) worker(i int) *supervise.Process {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.workers[i]
}

// alive returns an error naming a child that exited, with the tail of its
// output.
func (c *cluster) alive() error {
	for _, p := range c.children() {
		if err := p.Alive(); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	return nil
}

// poll calls f every readyEvery until it returns nil, a child exits, ctx
// ends or the ready timeout passes.
func (c *cluster) poll(ctx context.Context, what string, f func() error) error {
	err := supervise.Poll(ctx, what, c.cc.ReadyTimeout, readyEvery, f, c.children()...)
	if errors.Is(err, supervise.ErrExited) || errors.Is(err, supervise.ErrNotReady) {
		return fmt.Errorf("bench: %w", err)
	}
	return err
}

func (c *cluster) waitBroker(ctx context.Context) error {
	return c.poll(ctx, "broker at "+c.url, func() error {
		opts, err := c.credential(broker.AdminCredential) // the broker writes it at start
		if err != nil {
			return err
		}
		nc, err := nats.Connect(c.url, append(opts, nats.Timeout(time.Second), nats.NoReconnect())...)
		if err != nil {
			return err
		}
		nc.Close()
		return nil
	})
}

// ensureDispatcher has a dispatcher with strategy running and seeing every
// worker.
func (c *cluster) ensureDispatcher(ctx context.Context, strategy string) error {
	if c.disp != nil && c.dispFor == strategy {
		return nil
	}
	if c.disp != nil {
		c.stop(c.disp)
		c.disp = nil
	}
	c.dispN++
	id := fmt.Sprintf("bd-%d", c.dispN)
	f := strings.Fields(strategy) // the strategy, then any extra flags
	args := []string{"dispatcher", "--nats", c.url, "--id", id, "--strategy", f[0],
		"--log", filepath.Join(c.dir, id+"-loadbalancer.log")}
	args = append(args, f[1:]...)
	args = append(args, c.nkey(broker.DispatcherCredential)...)
	if c.cc.Load.Prefix != "" {
		args = append(args, "--prefix", c.cc.Load.Prefix)
	}
	d, err := c.spawn("dispatcher "+id, args...)
	if err != nil {
		return err
	}
	c.disp, c.dispFor, c.dispID = d, strategy, id
	if err := c.waitSees(ctx, id); err != nil {
		return err
	}
	c.event(fmt.Sprintf("dispatcher %s (%s) sees %d workers", id, strategy, c.cc.Workers))
	return nil
}

// waitSees waits until dispatcher id sees every worker up.
func (c *cluster) waitSees(ctx context.Context, id string) error {
	return c.poll(ctx, fmt.Sprintf("dispatcher %s seeing %d workers", id, c.cc.Workers), func() error {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		sts, err := c.ctl.Status(sctx, 20*time.Millisecond)
		if err != nil {
			return err
		}
		for _, st := range sts {
			if st.Dispatcher != id {
				continue
			}
			up := 0
			for _, w := range st.Workers {
				if w.State == wire.StateUp {
					up++
				}
			}
			if up < c.cc.Workers {
				return fmt.Errorf("it sees %d up", up)
			}
			return nil
		}
		return errors.New("no status from it yet")
	})
}

// stop ends a child that still runs: SIGTERM to its process group,
// SIGKILL after stopGrace.
func (c *cluster) stop(p *supervise.Process) {
	if p.Exited() {
		return
	}
	p.Stop(stopGrace)
	c.event("stopped " + p.Name())
}

// stopAll stops the dispatcher and the workers together, then the broker.
func (c *cluster) stopAll() {
	if c.ctl != nil {
		c.ctl.Close()
	}
	var group []*supervise.Process
	if c.disp != nil {
		group = append(group, c.disp)
	}
	group = append(group, c.workerList()...)
	done := make(chan struct{}, len(group))
	for _, p := range group {
		go func() { c.stop(p); done <- struct{}{} }()
	}
	for range group {
		<-done
	}
	if c.broker != nil {
		c.stop(c.broker)
	}
}

// nkey is the --nkey flag of a role's credential with CompareConfig.Auth;
// none without.
func (c *cluster) nkey(file string) []string {
	if !c.cc.Auth {
		return nil
	}
	return []string{"--nkey", filepath.Join(c.dir, "auth", file)}
}

// credential is the connect options of a credential with
// CompareConfig.Auth, its inbox prefix included; none without.
func (c *cluster) credential(file string) ([]nats.Option, error) {
	if !c.cc.Auth {
		return nil, nil
	}
	path := filepath.Join(c.dir, "auth", file)
	o, err := nats.NkeyOptionFromSeed(path)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	opts := []nats.Option{o}
	prefix, err := broker.InboxPrefixOf(path)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if prefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(prefix))
	}
	return opts, nil
}

// loadOptions is the load's connect options for target t: with
// CompareConfig.Auth, the default client's credential through a
// dispatcher, the admin's to the queue group.
func (c *cluster) loadOptions(t target) ([]nats.Option, error) {
	file := broker.ClientCredential
	if t.strategy == "" {
		file = broker.AdminCredential
	}
	opts, err := c.credential(file)
	if err != nil {
		return nil, err
	}
	return append(slices.Clone(c.cc.Load.Options), opts...), nil
}
