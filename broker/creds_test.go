package broker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
)

// TestAuthRoutesCarryTheSecret: with an auth directory, routes require the
// route user, and the routes given carry it.
func TestAuthRoutesCarryTheSecret(t *testing.T) {
	dir := t.TempDir()
	opts, err := buildOptions(Config{ClusterPort: 6222, Routes: []string{"nats://b2:6222", "nats://u:p@b3:6222"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := secure(Config{AuthDir: dir}, opts); err != nil {
		t.Fatal(err)
	}
	secret, err := os.ReadFile(filepath.Join(dir, RouteSecret))
	if err != nil {
		t.Fatal(err)
	}
	pass := string(secret[:len(secret)-1])
	if opts.Cluster.Username != RouteUser || opts.Cluster.Password != pass {
		t.Fatalf("cluster user %q password %q; want %q and the secret", opts.Cluster.Username, opts.Cluster.Password, RouteUser)
	}
	if u := opts.Routes[0].User; u == nil || u.Username() != RouteUser {
		t.Fatalf("route %v; want the route user", opts.Routes[0].Redacted())
	}
	if u := opts.Routes[1].User; u.Username() != "u" {
		t.Fatalf("route %v; want its own user kept", opts.Routes[1].Redacted())
	}
}

// TestEnsureCredentials: the files are made once, 0600, and brokers making
// them at once agree on one set.
func TestEnsureCredentials(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "auth")
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = EnsureCredentials(dir) }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	first, err := loadCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.users) != 4 || first.routeSecret == "" {
		t.Fatalf("credentials %+v; want 4 users and a route secret", first)
	}
	for _, f := range []string{ClientCredential, WorkerCredential, DispatcherCredential, AdminCredential, RouteSecret} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v; want 0600", f, st.Mode().Perm())
		}
		if _, err := nats.NkeyOptionFromSeed(filepath.Join(dir, f)); err != nil && f != RouteSecret {
			t.Errorf("nats.NkeyOptionFromSeed(%s): %v", f, err)
		}
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v; want 0700", st.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name()[0] == '.' {
			t.Errorf("left behind: %s", e.Name())
		}
	}
	if err := EnsureCredentials(dir); err != nil {
		t.Fatal(err)
	}
	again, err := loadCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !again.equal(first) || again.routeSecret != first.routeSecret {
		t.Fatal("a second EnsureCredentials changed the credentials")
	}
	if p, err := InboxPrefixOf(filepath.Join(dir, ClientCredential)); p != "_INBOX_CLIENT.default" || err != nil {
		t.Fatalf("InboxPrefixOf(client.nk) = %q, %v; want _INBOX_CLIENT.default", p, err)
	}
	if p, err := InboxPrefixOf(filepath.Join(dir, WorkerCredential)); p != "_INBOX_WORKER._fleet" || err != nil {
		t.Fatalf("InboxPrefixOf(worker.nk) = %q, %v; want _INBOX_WORKER._fleet", p, err)
	}
	if p, err := InboxPrefixOf(filepath.Join(dir, DispatcherCredential)); p != "" || err != nil {
		t.Fatalf("InboxPrefixOf(dispatcher.nk) = %q, %v; want none", p, err)
	}
}

func TestAddClient(t *testing.T) {
	dir := t.TempDir()
	if err := EnsureCredentials(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "default", "a.b", "a b", "*", ">", "x/y", string(make([]byte, 65))} {
		if _, _, err := AddClient(dir, name); !errors.Is(err, ErrCredentials) {
			t.Errorf("AddClient(%q) = %v; want %v", name, err, ErrCredentials)
		}
	}
	path, prefix, err := AddClient(dir, "alice-1")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "clients", "alice-1.nk"); path != want || prefix != "_INBOX_CLIENT.alice-1" {
		t.Fatalf("AddClient = %q, %q; want %q, _INBOX_CLIENT.alice-1", path, prefix, want)
	}
	if _, _, err := AddClient(dir, "alice-1"); !errors.Is(err, ErrCredentials) {
		t.Fatalf("AddClient twice = %v; want %v", err, ErrCredentials)
	}
	set, err := loadCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(set.users, func(c credential) bool { return c.role == "client" && c.name == "alice-1" }) {
		t.Fatalf("users %+v; want alice-1 among them", set.users)
	}
	if err := RemoveClient(dir, "alice-1"); err != nil {
		t.Fatal(err)
	}
	if err := RemoveClient(dir, "alice-1"); !errors.Is(err, ErrCredentials) {
		t.Fatalf("RemoveClient twice = %v; want %v", err, ErrCredentials)
	}
}

// TestPermissionsFollowThePrefix: the permissions are written for the
// configured prefix.
func TestPermissionsFollowThePrefix(t *testing.T) {
	p := Permissions("client", "alice", "calc2")
	if !slices.Contains(p.Publish.Allow, "calc2.request") || !slices.Contains(p.Subscribe.Allow, "_INBOX_CLIENT.alice.>") {
		t.Fatalf("client permissions %+v %+v", p.Publish, p.Subscribe)
	}
	if w := Permissions("worker", "", "calc2"); !slices.Contains(w.Subscribe.Allow, "calc2.worker.*") {
		t.Fatalf("worker subscribe %v", w.Subscribe.Allow)
	}
	w := WorkerPermissions("p", 2, "calc2")
	for _, subj := range []string{"calc2.heartbeat.p-0", "calc2.heartbeat.p-1", "_INBOX.*.p-1", "calc2.orphan.p-0", "_INBOX_WORKER.p.>"} {
		if !slices.Contains(w.Publish.Allow, subj) {
			t.Errorf("pool publish %v; want %s among them", w.Publish.Allow, subj)
		}
	}
	if slices.Contains(w.Publish.Allow, "calc2.heartbeat.p") || !slices.Contains(w.Subscribe.Allow, "calc2.worker.p-1") || w.Response == nil {
		t.Errorf("pool permissions %+v %+v %+v", w.Publish, w.Subscribe, w.Response)
	}
	if Permissions("admin", "", "calc") != nil {
		t.Fatal("admin permissions not nil")
	}
}

// TestEnsureCredentialsSecretLayout: a directory laid out as Kubernetes
// mounts a Secret (each file a link into ..data, no clients/) that holds
// every credential is read and not written to: it is read-only there.
func TestEnsureCredentialsSecretLayout(t *testing.T) {
	src := filepath.Join(t.TempDir(), "auth")
	if err := EnsureCredentials(src); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "..2026_12_08")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Base(data), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{ClientCredential, WorkerCredential, DispatcherCredential, AdminCredential, RouteSecret} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(data, f), b, 0o400); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..data", f), filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := os.ReadDir(dir)
	if err := EnsureCredentials(dir); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadDir(dir); len(after) != len(before) {
		t.Errorf("EnsureCredentials wrote to a complete directory: %d entries, then %d", len(before), len(after))
	}
	want, err := loadCredentials(src)
	if err != nil {
		t.Fatal(err)
	}
	got, err := loadCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !got.equal(want) {
		t.Errorf("the Secret's credentials %+v; want %+v", got, want)
	}
}

// TestAddWorker: a worker's own credential names its ids and inbox; bad
// names and replicas are refused; one renamed or edited by hand is left
// out, the others stay.
func TestAddWorker(t *testing.T) {
	dir := t.TempDir()
	if err := EnsureCredentials(dir); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name     string
		replicas int
	}{{"", 1}, {"_fleet", 1}, {"-a", 1}, {"a.b", 1}, {"a b", 1}, {"*", 1}, {"x/y", 1}, {string(make([]byte, 59)), 1}, {"ok", 0}, {"ok", MaxReplicas + 1}} {
		if _, err := AddWorker(dir, tt.name, tt.replicas); !errors.Is(err, ErrCredentials) {
			t.Errorf("AddWorker(%q, %d) = %v; want %v", tt.name, tt.replicas, err, ErrCredentials)
		}
	}
	path, err := AddWorker(dir, "w1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if name, replicas, err := WorkerOf(path); name != "w1" || replicas != 1 || err != nil {
		t.Fatalf("WorkerOf(w1) = %q, %d, %v; want w1, 1", name, replicas, err)
	}
	if p, _ := InboxPrefixOf(path); p != "_INBOX_WORKER.w1" {
		t.Fatalf("InboxPrefixOf(w1) = %q; want _INBOX_WORKER.w1", p)
	}
	pool, err := AddWorker(dir, "pool", 3)
	if err != nil {
		t.Fatal(err)
	}
	if name, replicas, _ := WorkerOf(pool); name != "pool" || replicas != 3 {
		t.Fatalf("WorkerOf(pool) = %q, %d; want pool, 3", name, replicas)
	}
	if ids := WorkerIDs("pool", 3); !slices.Equal(ids, []string{"pool-0", "pool-1", "pool-2"}) {
		t.Fatalf("WorkerIDs = %v", ids)
	}
	if _, err := AddWorker(dir, "w1", 1); !errors.Is(err, ErrCredentials) {
		t.Fatalf("AddWorker twice = %v; want %v", err, ErrCredentials)
	}
	if err := os.Rename(path, filepath.Join(dir, WorkersDir, "w2.nk")); err != nil {
		t.Fatal(err)
	}
	set, err := loadCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	var workers []string
	for _, c := range set.users {
		if c.role == "worker" {
			workers = append(workers, fmt.Sprintf("%s/%d", c.name, c.replicas))
		}
	}
	if !slices.Equal(workers, []string{"/0", "pool/3"}) || len(set.skipped) != 1 {
		t.Fatalf("workers %v, skipped %v; want the fleet's and pool/3, w2.nk left out", workers, set.skipped)
	}
	if err := EnsureWorkers(dir, []string{"w3", "w3", "pool"}); err != nil {
		t.Fatal(err)
	}
	if _, replicas, _ := WorkerOf(pool); replicas != 3 {
		t.Fatalf("EnsureWorkers rewrote the pool's credential: replicas %d", replicas)
	}
	if err := RemoveWorker(dir, "w3"); err != nil {
		t.Fatal(err)
	}
	if err := RemoveWorker(dir, "w3"); !errors.Is(err, ErrCredentials) {
		t.Fatalf("RemoveWorker twice = %v; want %v", err, ErrCredentials)
	}
}
