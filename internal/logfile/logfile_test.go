package logfile

import (
	"os"
	"path/filepath"
	"testing"
)

// TestReopen: after the file is renamed away, as a log rotation does,
// Reopen sends later lines to a new file at the path, and the lines
// written before reach the old one.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "loadbalancer.log")
	l, err := Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Write([]byte("before\n")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := l.Reopen(); err != nil {
		t.Fatalf("Reopen: %v", err)
	}
	if _, err := l.Write([]byte("after\n")); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for file, want := range map[string]string{path + ".1": "before\n", path: "after\n"} {
		b, err := os.ReadFile(file)
		if err != nil || string(b) != want {
			t.Errorf("%s holds %q (%v); want %q", filepath.Base(file), b, err, want)
		}
	}
}

// TestStdout: "-" writes to standard output, which Reopen and Close leave
// open.
func TestStdout(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdout
	os.Stdout = w
	defer func() { os.Stdout = saved }()
	l, err := Open(Stdout, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Write([]byte("line\n")); err != nil {
		t.Fatal(err)
	}
	if err := l.Reopen(); err != nil {
		t.Fatalf("Reopen: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := w.Write([]byte("still open\n")); err != nil {
		t.Fatalf("standard output closed by Close: %v", err)
	}
	w.Close()
	b := make([]byte, 64)
	n, _ := r.Read(b)
	if got := string(b[:n]); got != "line\nstill open\n" {
		t.Errorf("standard output got %q; want the line, then ours", got)
	}
}
