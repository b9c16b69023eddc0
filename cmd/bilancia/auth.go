package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/bilancia/bilancia/broker"
)

// AuthCmd makes and removes the credentials of broker --auth DIR.
type AuthCmd struct {
	Init         AuthInitCmd         `cmd:"" help:"Create the credentials broker --auth DIR creates on first start (those missing)."`
	AddClient    AuthAddClientCmd    `cmd:"" help:"Create a client credential, DIR/clients/NAME.nk, with an inbox of its own; a running broker takes it up within --auth-poll."`
	RemoveClient AuthRemoveClientCmd `cmd:"" help:"Delete DIR/clients/NAME.nk; a running broker disconnects its clients within --auth-poll."`
	AddWorker    AuthAddWorkerCmd    `cmd:"" help:"Create a worker credential, DIR/workers/ID.nk, that acts only for worker ID (or, with --replicas N, for ID-0 to ID-<N-1>); a running broker takes it up within --auth-poll."`
	RemoveWorker AuthRemoveWorkerCmd `cmd:"" help:"Delete DIR/workers/ID.nk; a running broker disconnects its workers within --auth-poll."`
}

// AuthInitCmd creates an auth directory's role credentials.
type AuthInitCmd struct {
	Dir string `required:"" placeholder:"DIR" help:"The auth directory."`
}

func (c *AuthInitCmd) Run() error {
	if err := broker.EnsureCredentials(c.Dir); err != nil {
		return err
	}
	for _, f := range []string{broker.ClientCredential, broker.WorkerCredential, broker.DispatcherCredential, broker.AdminCredential, broker.RouteSecret} {
		fmt.Println(filepath.Join(c.Dir, f))
	}
	return nil
}

// AuthAddClientCmd creates a named client's credential.
type AuthAddClientCmd struct {
	Name string `arg:"" help:"The client's name: 1 to 64 letters, digits, - or _."`
	Dir  string `required:"" placeholder:"DIR" help:"The auth directory of the brokers."`
}

func (c *AuthAddClientCmd) Run() error {
	path, prefix, err := broker.AddClient(c.Dir, c.Name)
	if err != nil {
		return err
	}
	fmt.Println(path)
	fmt.Fprintf(os.Stderr, "client %q: bilancia client --nkey %s (its replies arrive under %s.>; "+
		"nats req --nkey %[2]s --inbox-prefix %[3]s ...)\n", c.Name, path, prefix)
	return nil
}

// AuthRemoveClientCmd deletes a named client's credential.
type AuthRemoveClientCmd struct {
	Name string `arg:"" help:"The client's name."`
	Dir  string `required:"" placeholder:"DIR" help:"The auth directory of the brokers."`
}

func (c *AuthRemoveClientCmd) Run() error {
	return broker.RemoveClient(c.Dir, c.Name)
}

// AuthAddWorkerCmd creates a worker's (or a pool's) own credential.
type AuthAddWorkerCmd struct {
	ID       string `arg:"" help:"The worker's id, or a pool's: a letter or digit, then up to 57 letters, digits, - or _."`
	Replicas int    `default:"1" help:"A pool of this many workers, ID-0 to ID-<N-1>, as worker --replicas N runs them."`
	Dir      string `required:"" placeholder:"DIR" help:"The auth directory of the brokers."`
}

func (c *AuthAddWorkerCmd) Run() error {
	path, err := broker.AddWorker(c.Dir, c.ID, c.Replicas)
	if err != nil {
		return err
	}
	fmt.Println(path)
	fmt.Fprintf(os.Stderr, "worker %s: bilancia worker --nkey %s (it acts only for %s)\n", c.ID, path, describeIDs(c.ID, c.Replicas))
	return nil
}

// AuthRemoveWorkerCmd deletes a worker's own credential.
type AuthRemoveWorkerCmd struct {
	ID  string `arg:"" help:"The worker's (or pool's) id."`
	Dir string `required:"" placeholder:"DIR" help:"The auth directory of the brokers."`
}

func (c *AuthRemoveWorkerCmd) Run() error {
	return broker.RemoveWorker(c.Dir, c.ID)
}
