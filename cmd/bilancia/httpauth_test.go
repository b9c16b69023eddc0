package main

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/bilancia/bilancia/dashboard"
	"github.com/bilancia/bilancia/internal/metrics"
)

// TestHTTPAuthFlags: --metrics beyond loopback needs a token file or
// --metrics-insecure; a token file must hold a token worth the name.
func TestHTTPAuthFlags(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "0123456789abcdef0123\n")
	for _, bad := range []string{write("short", "secret\n"), write("spaces", "0123456789 abcdef0123\n"), write("empty", "")} {
		if _, err := readToken(bad); err == nil {
			t.Errorf("readToken(%s) = nil; want an error", filepath.Base(bad))
		}
	}
	if tok, err := readToken(good); tok != "0123456789abcdef0123" || err != nil {
		t.Fatalf("readToken(good) = %q, %v", tok, err)
	}

	if s, err := startMetrics("0.0.0.0:0", &MetricsAuthFlags{}); !errors.Is(err, metrics.ErrInsecure) {
		stopMetrics(s)
		t.Fatalf("--metrics 0.0.0.0:0 = %v; want %v", err, metrics.ErrInsecure)
	}
	for _, f := range []MetricsAuthFlags{{MetricsTokenFile: good}, {MetricsInsecure: true}} {
		s, err := startMetrics("0.0.0.0:0", &f)
		if err != nil {
			t.Fatalf("--metrics 0.0.0.0:0 with %+v: %v", f, err)
		}
		stopMetrics(s)
	}

	if err := (&DispatcherFlags{HTTP: "0.0.0.0:0"}).checkDashboard(); !errors.Is(err, dashboard.ErrInsecure) {
		t.Fatalf("--http 0.0.0.0:0 = %v; want %v", err, dashboard.ErrInsecure)
	}
	ok := DispatcherFlags{HTTP: "0.0.0.0:0", DashboardAuthFlags: DashboardAuthFlags{HTTPTokenFile: good}}
	if err := ok.checkDashboard(); err != nil {
		t.Fatalf("--http 0.0.0.0:0 --http-token-file: %v", err)
	}
	var cfg dashboard.Config
	if err := (&DashboardAuthFlags{HTTPTokenFile: good, HTTPInsecure: true}).config(&cfg); err != nil || cfg.Token == "" || !cfg.Insecure {
		t.Fatalf("dashboard config %+v, %v", cfg, err)
	}
}
