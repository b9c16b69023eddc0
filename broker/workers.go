package broker

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Each worker its own identity: a worker credential, DIR/workers/NAME.nk,
// may act only for the worker ids it names, NAME alone or, for a pool,
// NAME-0 .. NAME-<replicas-1> (what bilancia worker --id NAME --replicas
// N runs). The broker holds it to those ids' subjects (WorkerPermissions),
// so that whoever holds it cannot answer, heartbeat or hand over for
// another worker.
const (
	// WorkersDir holds a credential per worker or pool of workers.
	WorkersDir = "workers"
	// WorkerInboxRoot is the first token of the worker credentials' inbox
	// prefixes, WorkerInboxRoot + "." + name: each may subscribe only
	// under its own.
	WorkerInboxRoot = "_INBOX_WORKER"
	// FleetInbox is the inbox name of WorkerCredential, the credential
	// trusted with every worker id; no worker credential is called so.
	FleetInbox = "_fleet"
	// MaxReplicas bounds the ids of one worker credential: the broker
	// keeps a permission per subject of each.
	MaxReplicas = 10000
)

// The comment lines of a worker credential that name its ids.
const (
	workerLine   = "# worker: "
	replicasLine = "# replicas: "
)

// validWorker is a worker credential's name: a worker id that nats
// permissions and file names take as they are, leaving room for a pool's
// "-<n>".
var validWorker = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,57}$`)

// WorkerInboxPrefix is the inbox prefix of worker credential name's
// connections (claims' answers, replies' acknowledgements).
func WorkerInboxPrefix(name string) string { return WorkerInboxRoot + "." + name }

// WorkerIDs are the worker ids a credential named name with replicas
// workers acts for, as bilancia worker --id name --replicas replicas
// names them.
func WorkerIDs(name string, replicas int) []string {
	if replicas <= 1 {
		return []string{name}
	}
	ids := make([]string, replicas)
	for i := range ids {
		ids[i] = name + "-" + strconv.Itoa(i)
	}
	return ids
}

// AddWorker creates the credential of worker name (replicas <= 1) or of a
// pool of replicas workers, dir/workers/name.nk, and returns its path. A
// running broker on dir takes it up within its AuthPoll, or at once on
// Reload (SIGHUP). name is a letter or digit then up to 57 letters,
// digits, '-' or '_'.
func AddWorker(dir, name string, replicas int) (string, error) {
	if err := checkWorker(name, replicas); err != nil {
		return "", err
	}
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("%w: %w", ErrCredentials, err)
	}
	path := filepath.Join(dir, WorkersDir, name+".nk")
	if _, err := os.Stat(path); err == nil {
		return "", fmt.Errorf("%w: %s exists", ErrCredentials, path)
	}
	return path, ensureWorker(dir, name, replicas)
}

// EnsureWorkers creates the credentials of the workers named that are
// missing, one worker each, leaving existing ones as they are: for
// brokers that write a fixed fleet's credentials on first start
// (compose.yaml's --auth-workers).
func EnsureWorkers(dir string, names []string) error {
	for _, n := range names {
		if err := checkWorker(n, 1); err != nil {
			return err
		}
	}
	for _, n := range names {
		if err := ensureWorker(dir, n, 1); err != nil {
			return err
		}
	}
	return nil
}

func checkWorker(name string, replicas int) error {
	if !validWorker.MatchString(name) {
		return fmt.Errorf("%w: worker name %q must be a letter or digit and up to 57 letters, digits, - or _", ErrCredentials, name)
	}
	if replicas < 1 || replicas > MaxReplicas {
		return fmt.Errorf("%w: replicas %d must be between 1 and %d", ErrCredentials, replicas, MaxReplicas)
	}
	return nil
}

func ensureWorker(dir, name string, replicas int) error {
	if err := os.MkdirAll(filepath.Join(dir, WorkersDir), 0o700); err != nil {
		return fmt.Errorf("%w: %w", ErrCredentials, err)
	}
	about := "worker \"" + name + "\""
	lines := workerLine + name + "\n"
	if replicas > 1 {
		about = fmt.Sprintf("pool \"%s\" (%[1]s-0 to %[1]s-%d)", name, replicas-1)
		lines += replicasLine + strconv.Itoa(replicas) + "\n"
	}
	return createSeed(filepath.Join(dir, WorkersDir, name+".nk"), about, WorkerInboxPrefix(name), lines)
}

// RemoveWorker deletes the credential of worker (or pool) name, made by
// AddWorker. A running broker on dir disconnects its workers within its
// AuthPoll.
func RemoveWorker(dir, name string) error {
	if !validWorker.MatchString(name) {
		return fmt.Errorf("%w: no worker credential is called %q", ErrCredentials, name)
	}
	if err := os.Remove(filepath.Join(dir, WorkersDir, name+".nk")); err != nil {
		return fmt.Errorf("%w: %w", ErrCredentials, err)
	}
	return nil
}

// WorkerOf returns the worker name and replicas a worker credential file
// names ("" and 0 for any other file): bilancia worker takes its --id
// and --replicas from them.
func WorkerOf(seedFile string) (name string, replicas int, err error) {
	data, err := os.ReadFile(seedFile)
	if err != nil {
		return "", 0, fmt.Errorf("%w: %w", ErrCredentials, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if v, ok := strings.CutPrefix(line, strings.TrimSpace(workerLine)); ok {
			name, replicas = strings.TrimSpace(v), 1
		}
		if v, ok := strings.CutPrefix(line, strings.TrimSpace(replicasLine)); ok {
			if replicas, err = strconv.Atoi(strings.TrimSpace(v)); err != nil {
				return "", 0, fmt.Errorf("%w: %s: replicas %q", ErrCredentials, seedFile, v)
			}
		}
	}
	if name == "" {
		return "", 0, nil
	}
	return name, replicas, nil
}

// readWorkerCredential reads dir/workers/<file>: its lines must name the
// file's worker and inbox, as AddWorker wrote them. One renamed or edited
// by hand would act for ids or an inbox it was not made for.
func readWorkerCredential(path, name string) (credential, error) {
	c, err := readCredential(path, "worker", name)
	if err != nil {
		return c, err
	}
	got, replicas, err := WorkerOf(path)
	if err == nil && (got != name || checkWorker(name, replicas) != nil) {
		err = fmt.Errorf("%w: %s names worker %q (replicas %d), not %q: make worker credentials with bilancia auth add-worker, and do not rename them",
			ErrCredentials, path, got, replicas, name)
	}
	if err != nil {
		return credential{}, err
	}
	if p, _ := InboxPrefixOf(path); p != WorkerInboxPrefix(name) {
		return credential{}, fmt.Errorf("%w: %s names inbox prefix %q, not %q", ErrCredentials, path, p, WorkerInboxPrefix(name))
	}
	c.replicas = replicas
	return c, nil
}
