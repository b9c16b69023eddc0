package main

import (
	"bytes"
	"errors"
	"reflect"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
	"github.com/willabides/kongplete"
)

// parse parses args as main does, with kong's output and exit caught.
func parse(t *testing.T, args ...string) (cli *CLI, out string, exited int, err error) {
	t.Helper()
	cli = &CLI{}
	var buf bytes.Buffer
	exited = -1
	parser, err := newParser(cli, kong.Writers(&buf, &buf), kong.Exit(func(code int) {
		exited = code
		panic(errExited)
	}))
	if err != nil {
		t.Fatalf("newParser: %v", err)
	}
	defer func() {
		if r := recover(); r != nil && r != errExited {
			panic(r)
		}
		out = buf.String()
	}()
	_, err = parser.Parse(args)
	return cli, buf.String(), exited, err
}

var errExited = errors.New("exited")

// -c takes a JSON request whole: its commas are no separators.
func TestCommandFlagKeepsJSON(t *testing.T) {
	const req = `{"op":"add","args":[2,3]}`
	for _, tc := range []struct {
		name string
		args []string
		get  func(*CLI) []string
		want []string
	}{
		{"client", []string{"client", "-c", req}, func(c *CLI) []string { return c.Client.Command }, []string{req}},
		{"up", []string{"up", "-c", req, "-c", "add 1 2; fib 3"}, func(c *CLI) []string { return c.Up.Command }, []string{req, "add 1 2; fib 3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cli, _, _, err := parse(t, tc.args...)
			if err != nil {
				t.Fatalf("parse %q: %v", tc.args, err)
			}
			if got := tc.get(cli); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("-c = %q; want %q", got, tc.want)
			}
		})
	}
}

// A mistyped command line prints the error and a hint, not the usage.
func TestUsageError(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		error, cmd string
	}{
		{[]string{"--verison"}, `unknown flag --verison, did you mean "--version"?`, `run "bilancia --help" for the commands`},
		{[]string{"client", "--quite"}, `unknown flag --quite, did you mean "--quiet"?`, `run "bilancia client --help" for its flags`},
		{[]string{"helth"}, `unexpected argument helth, did you mean "health"?`, `run "bilancia --help" for the commands`},
		{[]string{"completion", "tcsh"}, `<shell> must be one of "bash","zsh","fish" but got "tcsh"`, `run "bilancia completion --help" for its flags`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, out, _, err := parse(t, tc.args...)
			if err == nil {
				t.Fatalf("parse %q succeeded", tc.args)
			}
			if out != "" {
				t.Errorf("parsing printed %q; want nothing", out)
			}
			if got, want := usageError(err), "bilancia: "+tc.error+"\n"+tc.cmd+"\n"; got != want {
				t.Errorf("usageError =\n%s\nwant\n%s", got, want)
			}
			if code := exitCode(err); code != 80 {
				t.Errorf("exit code = %d; want kong's 80", code)
			}
		})
	}
}

func TestNoArgumentsShowHelp(t *testing.T) {
	_, out, exited, _ := parse(t, commandLine(nil)...)
	if exited != 0 || !strings.HasPrefix(out, "Usage: bilancia <command>") {
		t.Errorf("bilancia alone printed %.80q and exited %d; want the help and 0", out, exited)
	}
	if got := commandLine([]string{"up"}); len(got) != 1 || got[0] != "up" {
		t.Errorf("commandLine(up) = %q", got)
	}
}

func TestVersionFlag(t *testing.T) {
	_, out, exited, _ := parse(t, "--version")
	if exited != 0 || out != versionString()+"\n" {
		t.Errorf("--version printed %q and exited %d; want %q and 0", out, exited, versionString())
	}
	if !strings.HasPrefix(out, "bilancia 0.") {
		t.Errorf("--version = %q; want bilancia and the version", out)
	}
	// The environment cannot turn it on: BILANCIA_<FLAG> is for settings.
	t.Setenv("BILANCIA_VERSION", "true")
	if _, out, exited, err := parse(t, "version"); err != nil || exited != -1 || out != "" {
		t.Errorf("with BILANCIA_VERSION set, parsing printed %q, exited %d, err %v; want the version command", out, exited, err)
	}
}

func TestFormatVersion(t *testing.T) {
	vcs := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	for _, tc := range []struct {
		name  string
		info  *debug.BuildInfo
		built string
		want  string
	}{
		{"no build info", nil, "", "bilancia 0.1.0"},
		{"go install @v0.2.0", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.2.0"}},
			"", "bilancia 0.1.0 (module v0.2.0, go1.26.8)"},
		{"checkout", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261202083013-4449d05fb989+dirty"},
			Settings: vcs("vcs.revision", "4449d05fb98912345678", "vcs.time", "2026-12-02T08:30:13Z", "vcs.modified", "true")},
			"", "bilancia 0.1.0 (commit 4449d05fb989, modified, committed 2026-12-02T08:30:13Z, go1.26.8)"},
		{"clean checkout, build time", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
			Settings: vcs("vcs.revision", "4449d05fb98912345678", "vcs.time", "2026-12-02T08:30:13Z", "vcs.modified", "false")},
			"2026-12-03T10:00:00Z", "bilancia 0.1.0 (commit 4449d05fb989, committed 2026-12-02T08:30:13Z, built 2026-12-03T10:00:00Z, go1.26.8)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := formatVersion("0.1.0", tc.info, tc.built); got != tc.want {
				t.Errorf("formatVersion = %q; want %q", got, tc.want)
			}
		})
	}
}

func TestCompletion(t *testing.T) {
	for shell, want := range map[string]string{
		"bash": "complete -o default -C '/opt/my bin/bilancia' bilancia\n",
		"zsh":  "complete -o default -C '/opt/my bin/bilancia' bilancia\n",
		"fish": "    '/opt/my bin/bilancia'\nend\ncomplete -f -c bilancia -a \"(__complete_bilancia)\"\n",
	} {
		if got := completionScript(shell, "/opt/my bin/bilancia"); !strings.HasSuffix(got, want) {
			t.Errorf("completionScript(%s) =\n%s\nwant it to end with\n%s", shell, got, want)
		}
	}
	if got, want := shellQuote("it's"), `'it'\''s'`; got != want {
		t.Errorf("shellQuote = %q; want %q", got, want)
	}

	// What the scripts ask: the binary, run with COMP_LINE set, answers.
	for line, want := range map[string]string{
		"bilancia cl":            "client\n",
		"bilancia client --qui":  "--quiet\n",
		"bilancia completion f":  "fish\n",
		"bilancia health work":   "worker\n",
		"bilancia up --work":     "--workers\n",
		"bilancia --vers":        "--version\n",
		"bilancia client --hist": "--history\n",
	} {
		t.Setenv("COMP_LINE", line)
		var buf bytes.Buffer
		parser, err := newParser(&CLI{}, kong.Writers(&buf, &buf))
		if err != nil {
			t.Fatal(err)
		}
		exited := -1
		completeCommandLine(parser, kongplete.WithExitFunc(func(code int) { exited = code }))
		if exited != 0 || buf.String() != want {
			t.Errorf("completing %q = %q (exit %d); want %q", line, buf.String(), exited, want)
		}
	}
}

func TestExitStatus(t *testing.T) {
	for _, tc := range []struct {
		failed      int
		interactive bool
		want        int
	}{
		{0, false, 0}, {3, false, 1}, {0, true, 0}, {3, true, 0},
	} {
		err := exitStatus(tc.failed, tc.interactive)
		got := 0
		var ee *exitError
		if errors.As(err, &ee) {
			got = ee.code
		}
		if got != tc.want {
			t.Errorf("exitStatus(%d, interactive %v) = %d; want %d", tc.failed, tc.interactive, got, tc.want)
		}
	}
}

func TestWatchHint(t *testing.T) {
	got := watchHint("foo", "nats://127.0.0.1:4222")
	if !strings.Contains(got, "nats sub 'foo.>' --server nats://127.0.0.1:4222") || strings.Contains(got, "calc") {
		t.Errorf("watchHint(foo) = %q; want nats sub 'foo.>'", got)
	}
	if !strings.Contains(got, "nats sub '>'") {
		t.Errorf("watchHint = %q; want the way to see replies too", got)
	}
}
