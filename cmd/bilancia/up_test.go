package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestUpRunsAndLeavesNothing runs `bilancia up -c ...` in-process: the
// broker, dispatcher, three workers and the client come up, answer, and
// shut down in order, leaving no goroutine behind and a log that tells it.
func TestUpRunsAndLeavesNothing(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	logPath := filepath.Join(t.TempDir(), "loadbalancer.log")
	up := &UpCmd{
		Host: "127.0.0.1", Port: -1, Prefix: "calc", Workers: 3,
		DispatcherFlags: DispatcherFlags{
			Heartbeat: time.Second, RequestTimeout: 5 * time.Second, AttemptTimeout: time.Second,
			MaxAttempts: 3, MaxInflight: 100, Strategy: "round-robin", EjectAfter: 5, EjectFor: 5 * time.Second,
			Log: logPath, LogRequests: true,
		},
		WorkerFlags: WorkerFlags{Concurrency: 4, MaxSleep: time.Second, MaxSpin: time.Second},
		ClientFlags: ClientFlags{Timeout: 5 * time.Second, Retries: 3, Inflight: 8, Quiet: true},
		Command:     []string{`add 2 3; random 30; {"op":"add","args":[2,3]}`}, // the JSON whole, not split at its commas
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := up.Run(&globals{ctx: ctx}); err != nil {
		t.Fatalf("up: %v", err)
	}

	f, err := os.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	counts := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line struct {
			Msg    string `json:"msg"`
			Status int    `json:"status"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
		}
		counts[line.Msg]++
		if line.Msg == "request" && line.Status != 200 {
			t.Errorf("request logged with status %d", line.Status)
		}
	}
	want := map[string]int{
		"dispatcher started": 1, "worker up": 3, "client connected": 1, "request": 32,
		"client disconnected": 1, "worker draining": 3, "dispatcher stopped": 1,
	}
	for msg, n := range want {
		if counts[msg] != n {
			t.Errorf("log has %d %q lines; want %d (all: %v)", counts[msg], msg, n, counts)
		}
	}
}

// TestUpAuth: up --auth runs every role inside with its credential.
func TestUpAuth(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := filepath.Join(t.TempDir(), "auth")
	up := &UpCmd{
		Host: "127.0.0.1", Port: -1, Prefix: "calc", Workers: 2, Auth: dir,
		DispatcherFlags: testDispatcherFlags(t),
		WorkerFlags:     WorkerFlags{Concurrency: 4, MaxSleep: time.Second, MaxSpin: time.Second},
		ClientFlags:     ClientFlags{Timeout: 5 * time.Second, Retries: 3, Inflight: 8, Quiet: true},
		Command:         []string{"add 2 3; random 10"},
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := up.Run(&globals{ctx: ctx}); err != nil {
		t.Fatalf("up --auth: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "client.nk")); err != nil {
		t.Fatalf("up --auth made no credentials: %v", err)
	}
}
