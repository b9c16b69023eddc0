package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bilancia/bilancia/internal/supervise"
)

// runMainEnv makes the test binary run main instead of the tests, so that
// a test can run bilancia as a process of its own (startMain) without
// building it.
const runMainEnv = "GO_WANT_BILANCIA_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// startMain runs bilancia with args as a child process, its output in a
// file of the test's, and stops it at the test's end if it still runs.
func startMain(t *testing.T, name string, args ...string) *supervise.Process {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p, err := supervise.Start(supervise.Config{
		Name: name, Path: exe, Args: args,
		Output: filepath.Join(t.TempDir(), name+".out"),
		Env:    append(supervise.Env(), runMainEnv+"=1"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopChild(t, p) })
	return p
}

// stopChild stops p, and shows the end of its output if the test failed.
func stopChild(t *testing.T, p *supervise.Process) {
	p.Stop(5 * time.Second)
	if t.Failed() {
		t.Logf("%s printed, at the end:\n%s", p.Name(), strings.Join(p.Tail(20), "\n"))
	}
}
