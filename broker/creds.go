package broker

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/nats-io/nkeys"
)

// The files of an auth directory (Config.AuthDir). Every role's credential
// is an NKey user seed, mode 0600, that any NATS client reads with
// nats.NkeyOptionFromSeed (bilancia --nkey FILE, nats --nkey FILE).
const (
	// ClientCredential is the default client's credential, named
	// DefaultClient.
	ClientCredential = "client.nk"
	// WorkerCredential may act for any worker id: for tests, benchmarks
	// and fleets whose workers trust one another. A worker of its own,
	// with workers/NAME.nk (AddWorker), acts only for its ids.
	WorkerCredential = "worker.nk"
	// DispatcherCredential is shared by every dispatcher.
	DispatcherCredential = "dispatcher.nk"
	// AdminCredential may publish and subscribe to anything: for
	// operators (nats sub, bench --compare's queue group), never for a role.
	AdminCredential = "admin.nk"
	// RouteSecret is the password brokers sharing the directory give one
	// another on their routes.
	RouteSecret = "route.secret"
	// ClientsDir holds a credential per named client, NAME.nk (AddClient).
	ClientsDir = "clients"
	// DefaultClient is the name of ClientCredential's client.
	DefaultClient = "default"
	// ClientInboxRoot is the first token of every client credential's
	// inbox prefix, ClientInboxRoot + "." + name: dispatchers may publish
	// under it, each client only subscribe under its own name.
	ClientInboxRoot = "_INBOX_CLIENT"
	// RouteUser is the user name of routes between brokers.
	RouteUser = "bilancia-route"
)

// Errors about credentials.
var (
	// ErrCredentials reports an auth directory that cannot be read or
	// written, or a credential file that is not one.
	ErrCredentials = errors.New("broker: credentials")
)

// inboxLine is the comment line of a client credential that names its
// inbox prefix; nkeys' parser skips it, as it skips any line that does not
// start with a seed.
const inboxLine = "# inbox-prefix: "

var validName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ClientInboxPrefix is the inbox prefix of client name's credential.
func ClientInboxPrefix(name string) string { return ClientInboxRoot + "." + name }

// roleFiles are the credentials EnsureCredentials creates, with what their
// first comment line says.
var roleFiles = []struct{ file, about string }{
	{ClientCredential, "client \"" + DefaultClient + "\""},
	{WorkerCredential, "worker (any worker id)"},
	{DispatcherCredential, "dispatcher"},
	{AdminCredential, "admin: every subject, for operators only"},
}

// EnsureCredentials creates dir (mode 0700) and whichever of its role
// credentials and route secret are missing, leaving existing ones as they
// are. Brokers sharing dir may call it at once: each file is created
// whole or not at all, and the first one written wins. A dir that holds
// them all is not written to, so that it may be read-only (a Kubernetes
// Secret, without ClientsDir).
func EnsureCredentials(dir string) error {
	if credentialsComplete(dir) {
		return nil
	}
	if err := os.MkdirAll(filepath.Join(dir, ClientsDir), 0o700); err != nil {
		return fmt.Errorf("%w: %w", ErrCredentials, err)
	}
	for _, r := range roleFiles {
		prefix := ""
		switch r.file {
		case ClientCredential:
			prefix = ClientInboxPrefix(DefaultClient)
		case WorkerCredential:
			prefix = WorkerInboxPrefix(FleetInbox)
		}
		if err := createSeed(filepath.Join(dir, r.file), r.about, prefix, ""); err != nil {
			return err
		}
	}
	secret := make([]byte, 24)
	if _, err := rand.Read(secret); err != nil {
		return fmt.Errorf("%w: %w", ErrCredentials, err)
	}
	return createExclusive(filepath.Join(dir, RouteSecret), []byte(hex.EncodeToString(secret)+"\n"))
}

// credentialsComplete tells whether dir holds every role credential and
// the route secret.
func credentialsComplete(dir string) bool {
	for _, f := range append([]string{RouteSecret}, ClientCredential, WorkerCredential, DispatcherCredential, AdminCredential) {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return false
		}
	}
	return true
}

// AddClient creates the credential of a client called name,
// dir/clients/name.nk, and returns its path and inbox prefix. A running
// broker on dir takes it up within its AuthPoll. name is 1 to 64 letters,
// digits, '-' or '_'; DefaultClient is taken.
func AddClient(dir, name string) (path, inboxPrefix string, err error) {
	if !validName.MatchString(name) || name == DefaultClient {
		return "", "", fmt.Errorf("%w: client name %q must be 1 to 64 letters, digits, - or _, and not %q",
			ErrCredentials, name, DefaultClient)
	}
	if _, err := os.Stat(dir); err != nil {
		return "", "", fmt.Errorf("%w: %w", ErrCredentials, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, ClientsDir), 0o700); err != nil {
		return "", "", fmt.Errorf("%w: %w", ErrCredentials, err)
	}
	path = filepath.Join(dir, ClientsDir, name+".nk")
	if _, err := os.Stat(path); err == nil {
		return "", "", fmt.Errorf("%w: %s exists", ErrCredentials, path)
	}
	inboxPrefix = ClientInboxPrefix(name)
	if err := createSeed(path, "client \""+name+"\"", inboxPrefix, ""); err != nil {
		return "", "", err
	}
	return path, inboxPrefix, nil
}

// createSeed writes a new user seed to path unless a file is there, with
// comment lines naming its inbox prefix and the extra lines given.
func createSeed(path, about, inboxPrefix, extra string) error {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCredentials, err)
	}
	seed, err := kp.Seed()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCredentials, err)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Bilancia %s credential (NKey seed). Keep it secret.\n", about)
	if inboxPrefix != "" {
		b.WriteString(inboxLine + inboxPrefix + "\n")
	}
	b.WriteString(extra)
	b.Write(seed)
	b.WriteByte('\n')
	return createExclusive(path, b.Bytes())
}

// createExclusive writes data to path, mode 0600, unless path exists: a
// temporary file linked into place, so that nobody reads half a file and
// concurrent writers do not overwrite each other.
func createExclusive(path string, data []byte) error {
	if _, err := os.Lstat(path); err == nil {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCredentials, err)
	}
	defer os.Remove(tmp.Name())
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if err = os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
			err = nil // another broker's came first
		}
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCredentials, err)
	}
	return nil
}

// InboxPrefixOf returns the inbox prefix a credential file names (a client
// credential made by EnsureCredentials or AddClient), or "" if it names
// none.
func InboxPrefixOf(seedFile string) (string, error) {
	data, err := os.ReadFile(seedFile)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrCredentials, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if p, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), strings.TrimSpace(inboxLine)); ok {
			return strings.TrimSpace(p), nil
		}
	}
	return "", nil
}

// credential is one user of an auth directory.
type credential struct {
	role     string // "client", "worker", "dispatcher", "admin"
	name     string // a client's name; a worker credential's ("" = any id)
	replicas int    // a worker credential's ids (WorkerIDs)
	pubKey   string
}

// credentialSet is what an auth directory holds: its users, sorted, and the
// route secret.
type credentialSet struct {
	users       []credential
	routeSecret string
	skipped     []error // client credentials left out, and why
}

func (s credentialSet) equal(o credentialSet) bool {
	if s.routeSecret != o.routeSecret || len(s.users) != len(o.users) || len(s.skipped) != len(o.skipped) {
		return false
	}
	for i := range s.users {
		if s.users[i] != o.users[i] {
			return false
		}
	}
	for i := range s.skipped {
		if s.skipped[i].Error() != o.skipped[i].Error() {
			return false
		}
	}
	return true
}

// loadCredentials reads an auth directory. A role credential that cannot
// be read is an error; a named client's is left out, and said in skipped:
// one bad file must not keep the others out. A client credential whose
// inbox line does not match its file name (renamed by hand) is bad: its
// client would subscribe where it may not.
func loadCredentials(dir string) (credentialSet, error) {
	var set credentialSet
	secret, err := os.ReadFile(filepath.Join(dir, RouteSecret))
	if err != nil {
		return set, fmt.Errorf("%w: %w", ErrCredentials, err)
	}
	set.routeSecret = strings.TrimSpace(string(secret))
	for _, r := range []struct{ file, role, name string }{
		{ClientCredential, "client", DefaultClient},
		{WorkerCredential, "worker", ""},
		{DispatcherCredential, "dispatcher", ""},
		{AdminCredential, "admin", ""},
	} {
		c, err := readCredential(filepath.Join(dir, r.file), r.role, r.name)
		if err != nil {
			return set, err
		}
		set.users = append(set.users, c)
	}
	entries, err := os.ReadDir(filepath.Join(dir, ClientsDir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return set, fmt.Errorf("%w: %w", ErrCredentials, err)
	}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".nk")
		if !ok || !e.Type().IsRegular() || !validName.MatchString(name) || name == DefaultClient {
			continue // temporary files, and whatever else is not a credential
		}
		c, err := readCredential(filepath.Join(dir, ClientsDir, e.Name()), "client", name)
		if err != nil {
			set.skipped = append(set.skipped, err)
			continue
		}
		set.users = append(set.users, c)
	}
	if err := loadWorkers(dir, &set); err != nil {
		return set, err
	}
	sort.Slice(set.users, func(i, j int) bool {
		a, b := set.users[i], set.users[j]
		if a.role != b.role {
			return a.role < b.role
		}
		return a.name < b.name
	})
	return set, nil
}

func readCredential(path, role, name string) (credential, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return credential{}, fmt.Errorf("%w: %w", ErrCredentials, err)
	}
	kp, err := nkeys.ParseDecoratedNKey(data)
	if err != nil {
		return credential{}, fmt.Errorf("%w: %s: %w", ErrCredentials, path, err)
	}
	defer kp.Wipe()
	pub, err := kp.PublicKey()
	if err == nil && !nkeys.IsValidPublicUserKey(pub) {
		err = errors.New("not a user seed")
	}
	if err != nil {
		return credential{}, fmt.Errorf("%w: %s: %w", ErrCredentials, path, err)
	}
	if role == "client" {
		got, _ := InboxPrefixOf(path)
		if want := ClientInboxPrefix(name); got != want {
			return credential{}, fmt.Errorf("%w: %s names inbox prefix %q, not %q: make client credentials with bilancia auth add-client, and do not rename them",
				ErrCredentials, path, got, want)
		}
	}
	return credential{role: role, name: name, pubKey: pub}, nil
}

// loadWorkers adds the worker credentials of dir to set, leaving out (in
// set.skipped) those that are not as AddWorker wrote them.
func loadWorkers(dir string, set *credentialSet) error {
	entries, err := os.ReadDir(filepath.Join(dir, WorkersDir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %w", ErrCredentials, err)
	}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".nk")
		if !ok || !e.Type().IsRegular() || !validWorker.MatchString(name) {
			continue
		}
		c, err := readWorkerCredential(filepath.Join(dir, WorkersDir, e.Name()), name)
		if err != nil {
			set.skipped = append(set.skipped, err)
			continue
		}
		set.users = append(set.users, c)
	}
	return nil
}

// RemoveClient deletes the credential of client name, made by AddClient.
// A running broker on dir disconnects its clients within its AuthPoll.
func RemoveClient(dir, name string) error {
	if !validName.MatchString(name) || name == DefaultClient {
		return fmt.Errorf("%w: no client credential is called %q", ErrCredentials, name)
	}
	if err := os.Remove(filepath.Join(dir, ClientsDir, name+".nk")); err != nil {
		return fmt.Errorf("%w: %w", ErrCredentials, err)
	}
	return nil
}
