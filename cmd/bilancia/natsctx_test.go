package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	natsserver "github.com/nats-io/nats-server/v2/test"
)

// startUserBroker runs a nats-server that admits only user alice.
func startUserBroker(t *testing.T) string {
	t.Helper()
	opts := natsserver.DefaultTestOptions
	opts.Port = -1
	opts.Username, opts.Password = "alice", "s3cret"
	srv := natsserver.RunServer(&opts)
	t.Cleanup(srv.Shutdown)
	return srv.ClientURL()
}

// saveContext writes a context of the nats CLI under dir, as nats context
// save does.
func saveContext(t *testing.T, dir, name string, fields map[string]any) {
	t.Helper()
	b, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "nats", "context"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "nats", "context", name+".json"), string(b))
}

// TestNATSContext: --context connects with a context's server and
// credentials; without --context or --nats, the nats CLI's selected
// context is used; --nats alone leaves the selected context aside; flags
// win over a context's fields.
func TestNATSContext(t *testing.T) {
	url := startUserBroker(t)
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	saveContext(t, dir, "prod", map[string]any{"description": "test", "url": url, "user": "alice", "password": "s3cret"})
	saveContext(t, dir, "wrong", map[string]any{"url": url, "user": "alice", "password": "nope"})

	healthy := func(args ...string) {
		t.Helper()
		out, errOut, code := runMain(t, append([]string{"health", "broker"}, args...)...)
		if code != 0 || !strings.Contains(out, "healthy: broker") {
			t.Errorf("health broker %v: exit %d, %q, %q; want healthy", args, code, out, errOut)
		}
	}
	refused := func(why string, args ...string) {
		t.Helper()
		_, errOut, code := runMain(t, append([]string{"health", "broker"}, args...)...)
		if code == 0 || !strings.Contains(errOut, why) {
			t.Errorf("health broker %v: exit %d, %q; want a failure and %q", args, code, errOut, why)
		}
	}
	healthy("--context", "prod")
	refused("Authorization Violation", "--context", "wrong")
	healthy("--context", "wrong", "--user", "alice", "--password", "s3cret") // the flags win
	refused("no such context", "--context", "nothere")
	healthy("--context", filepath.Join(dir, "nats", "context", "prod.json")) // a file's path

	// The selected context, when no --nats is given.
	refused("no NATS server answered", "--timeout", "1s", "--nats", "nats://127.0.0.1:1")
	writeFile(t, filepath.Join(dir, "nats", "context.txt"), "prod\n")
	healthy()
	refused("Authorization Violation", "--nats", url) // --nats: no context

	// The client role too, from its environment variable.
	t.Setenv("NATS_CONTEXT", "wrong")
	_, errOut, code := runMain(t, "client", "-c", "add 2 3")
	if code != 1 || !strings.Contains(errOut, "refused") {
		t.Errorf("client with NATS_CONTEXT=wrong: exit %d, %q; want 1 and the refusal", code, errOut)
	}
}

// TestNATSContextSavedByTheCLI: a context that the nats CLI saved, when
// it is installed, works as --context.
func TestNATSContextSavedByTheCLI(t *testing.T) {
	natsCLI, err := exec.LookPath("nats")
	if err != nil {
		t.Skip("no nats CLI on $PATH")
	}
	url := startUserBroker(t)
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	save := exec.Command(natsCLI, "context", "save", "saved", "--server", url, "--user", "alice", "--password", "s3cret")
	if out, err := save.CombinedOutput(); err != nil {
		t.Fatalf("nats context save: %v\n%s", err, out)
	}
	if out, errOut, code := runMain(t, "health", "broker", "--context", "saved"); code != 0 {
		t.Errorf("health broker --context saved: exit %d, %q, %q; want healthy", code, out, errOut)
	}
}
