package main

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

var updateREADME = flag.Bool("update-readme", false, "rewrite README.md's list of environment variables")

// sharedPrefix are the flags outside NATSFlags that read the connection's
// BILANCIA_PREFIX: the deployment's prefix, which the broker's permissions
// and up's roles must agree on with every role.
var sharedPrefix = map[string]bool{"broker --prefix": true, "up --prefix": true}

// connRanges are the memory of every NATSFlags in cli: a flag whose target
// lies in one is a shared connection flag.
func connRanges(v reflect.Value) [][2]uintptr {
	var out [][2]uintptr
	if v.Kind() != reflect.Struct {
		return nil
	}
	if v.Type() == reflect.TypeOf(NATSFlags{}) {
		start := v.Addr().Pointer()
		return [][2]uintptr{{start, start + v.Type().Size()}}
	}
	for i := range v.NumField() {
		out = append(out, connRanges(v.Field(i))...) // unexported too: ctl embeds ctlFlags
	}
	return out
}

func newTestParser(t *testing.T) (*CLI, *kong.Kong) {
	t.Helper()
	cli := &CLI{}
	k, err := newParser(cli)
	if err != nil {
		t.Fatal(err)
	}
	return cli, k
}

// TestEnvNamesDoNotCollide walks every flag of every command: two flags
// may share a variable only if they are the same connection flag of
// different commands; every other flag's variable names its command; no
// flag takes a variable the scripts use for themselves.
func TestEnvNamesDoNotCollide(t *testing.T) {
	cli, k := newTestParser(t)
	conn := connRanges(reflect.ValueOf(cli).Elem())
	isConn := func(f *kong.Flag) bool {
		if !f.Target.CanAddr() {
			return false
		}
		p := f.Target.Addr().Pointer()
		for _, r := range conn {
			if p >= r[0] && p < r[1] {
				return true
			}
		}
		return false
	}
	meaning := map[string]string{}    // variable → the flag it sets
	connEnvs := map[string][]string{} // connection flag → its variables
	conns := 0
	var walk func(n *kong.Node)
	walk = func(n *kong.Node) {
		path := strings.Join(commandPath(n), " ")
		for _, f := range n.Flags {
			what := "bilancia " + path + " --" + f.Name
			if isConn(f) || sharedPrefix[path+" --"+f.Name] {
				conns++
				what = "the connection flag --" + f.Name
				if prev, ok := connEnvs[f.Name]; ok && !reflect.DeepEqual(prev, f.Envs) {
					t.Errorf("%s of %q reads %v, elsewhere %v; want one name for every role", what, path, f.Envs, prev)
				}
				connEnvs[f.Name] = f.Envs
				if len(f.Envs) == 0 || f.Envs[0] != envName(nil, f.Name) {
					t.Errorf("%s of %q reads %v; want BILANCIA_<FLAG>, the same for every role", what, path, f.Envs)
				}
			} else if path != "" || f.Name != "help" && f.Name != "version" {
				if own := envName(commandPath(n), f.Name); len(f.Envs) == 0 || f.Envs[0] != own {
					t.Errorf("%s reads %v; want %s", what, f.Envs, own)
				}
			}
			for _, env := range f.Envs {
				if prev, ok := meaning[env]; ok && prev != what {
					t.Errorf("%s sets both %s and %s", env, prev, what)
				}
				meaning[env] = what
			}
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(k.Model.Node)
	for _, v := range scriptVars {
		if m, ok := meaning[v]; ok {
			t.Errorf("%s, which compose.yaml or scripts/ read, also sets %s", v, m)
		}
	}
	if conns == 0 || len(meaning) < 100 {
		t.Fatalf("walked %d variables, %d connection flags: the walk missed the model", len(meaning), conns)
	}
}

// TestEnvPerRole: a role's variable sets that role's flag only; the
// connection's variables set every role's; the flat names of before
// set nothing.
func TestEnvPerRole(t *testing.T) {
	t.Setenv("BILANCIA_WORKER_ID", "w-env")
	t.Setenv("BILANCIA_NATS", "nats://elsewhere:4222")
	t.Setenv("BILANCIA_ID", "flat")
	t.Setenv("BILANCIA_CONCURRENCY", "99")

	cli, _, _, err := parse(t, "worker")
	if err != nil {
		t.Fatal(err)
	}
	if cli.Worker.ID != "w-env" || cli.Worker.NATS != "nats://elsewhere:4222" || cli.Worker.Concurrency != 16 {
		t.Errorf("worker: id %q, nats %q, concurrency %d; want w-env, nats://elsewhere:4222, 16",
			cli.Worker.ID, cli.Worker.NATS, cli.Worker.Concurrency)
	}
	cli, _, _, err = parse(t, "dispatcher")
	if err != nil {
		t.Fatal(err)
	}
	if cli.Dispatcher.ID != "" || cli.Dispatcher.NATS != "nats://elsewhere:4222" {
		t.Errorf("dispatcher: id %q, nats %q; want none and nats://elsewhere:4222", cli.Dispatcher.ID, cli.Dispatcher.NATS)
	}
	cli, _, _, err = parse(t, "up")
	if err != nil {
		t.Fatal(err)
	}
	if cli.Up.Concurrency != 16 {
		t.Errorf("up: concurrency %d; want the default 16", cli.Up.Concurrency)
	}
	if _, _, _, err := parse(t, "health", "worker"); err == nil || !strings.Contains(err.Error(), "--id") {
		t.Errorf("health worker with BILANCIA_WORKER_ID only: %v; want its --id missing", err)
	}
	t.Setenv("BILANCIA_HEALTH_WORKER_ID", "w-checked")
	t.Setenv("BILANCIA_DISPATCHER_ID", "d-env")
	cli, _, _, err = parse(t, "health", "worker")
	if err != nil || cli.Health.Worker.ID != "w-checked" {
		t.Errorf("health worker: id %q, err %v; want w-checked", cli.Health.Worker.ID, err)
	}
	if cli, _, _, err = parse(t, "worker"); err != nil || cli.Worker.ID != "w-env" {
		t.Errorf("worker: id %q, err %v; want w-env still", cli.Worker.ID, err)
	}
	// The deployment's prefix reaches the broker's permissions too.
	t.Setenv("BILANCIA_PREFIX", "p9")
	for _, tc := range []struct {
		args   []string
		prefix func(*CLI) string
	}{
		{[]string{"broker"}, func(c *CLI) string { return c.Broker.Prefix }},
		{[]string{"up"}, func(c *CLI) string { return c.Up.Prefix }},
		{[]string{"worker"}, func(c *CLI) string { return c.Worker.Prefix }},
		{[]string{"health", "worker"}, func(c *CLI) string { return c.Health.Worker.Prefix }},
	} {
		cli, _, _, err := parse(t, tc.args...)
		if err != nil {
			t.Fatal(err)
		}
		if got := tc.prefix(cli); got != "p9" {
			t.Errorf("%v: prefix %q; want p9", tc.args, got)
		}
	}
}

// TestHelpShowsEnv: a command's help names its variables.
func TestHelpShowsEnv(t *testing.T) {
	_, out, _, _ := parse(t, "worker", "--help")
	for _, want := range []string{"$BILANCIA_WORKER_ID", "$BILANCIA_WORKER_CONCURRENCY", "$BILANCIA_NATS", "$NATS_URL"} {
		if !strings.Contains(out, want) {
			t.Errorf("worker --help does not name %s:\n%s", want, out)
		}
	}
}

const (
	envBegin = "<!-- environment: generated by go test ./cmd/bilancia -run TestREADMEEnvironment -update-readme -->\n"
	envEnd   = "<!-- end of environment -->\n"
)

// TestREADMEEnvironment: README.md lists every command's variables as the
// model has them; -update-readme rewrites the list.
func TestREADMEEnvironment(t *testing.T) {
	_, k := newTestParser(t)
	want := envTable(k)
	const path = "../../README.md"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	before, rest, ok1 := strings.Cut(readme, envBegin)
	got, after, ok2 := strings.Cut(rest, envEnd)
	if !ok1 || !ok2 {
		t.Fatalf("README.md has no section between %q and %q", envBegin, envEnd)
	}
	if got == want {
		return
	}
	if *updateREADME {
		if err := os.WriteFile(path, []byte(before+envBegin+want+envEnd+after), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md's environment variables are out of date; run go test ./cmd/bilancia -run TestREADMEEnvironment -update-readme\nREADME has:\n%s\nthe commands have:\n%s", got, want)
}

// TestStaleEnv: a BILANCIA_ variable no flag reads is warned of, with the
// selected command's own name for it when there is one; the variables
// flags and scripts read are not.
func TestStaleEnv(t *testing.T) {
	_, k := newTestParser(t)
	kctx, err := k.Parse([]string{"worker"})
	if err != nil {
		t.Fatal(err)
	}
	got := staleEnv(k, kctx.Selected(), []string{
		"BILANCIA_ID=x", "BILANCIA_TYPO=1", "BILANCIA_WORKER_ID=w", "BILANCIA_NATS=n", "BILANCIA_DISPATCHER_ID=d",
		"BILANCIA_PORT=0", "NATS_URL=u", "HOME=/root",
	})
	want := []string{
		"warning: BILANCIA_ID is set, and no flag reads it: did you mean BILANCIA_WORKER_ID?",
		"warning: BILANCIA_TYPO is set, and no flag reads it (a command's flag reads BILANCIA_<COMMAND>_<FLAG>, see --help)",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("staleEnv =\n%q\nwant\n%q", got, want)
	}
}

// TestScriptVarsListed: every BILANCIA_ variable that compose.yaml, the
// Dockerfile, scripts/, .ci/ or another package's test mentions is a flag's or in
// scriptVars, so that neither staleEnv nor the collision test misses it.
func TestScriptVarsListed(t *testing.T) {
	_, k := newTestParser(t)
	known := knownEnv(k)
	var files []string
	for _, pattern := range []string{"../../compose.yaml", "../../Dockerfile", "../../scripts/*", "../../.ci/*", "../../*/*_test.go", "../../*/*/*_test.go"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 10 {
		t.Fatalf("found %d files to read: %v", len(files), files)
	}
	name := regexp.MustCompile(`\bBILANCIA_[A-Z][A-Z0-9_]*[A-Z0-9]`)
	for _, f := range files {
		if strings.HasPrefix(f, "../../cmd/bilancia/") {
			continue // these tests name old and wrong ones on purpose
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range name.FindAllString(string(b), -1) {
			if !known[v] {
				t.Errorf("%s reads %s, which no flag reads and scriptVars does not list", f, v)
			}
		}
	}
}
