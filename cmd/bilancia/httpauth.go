package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/bilancia/bilancia/dashboard"
	"github.com/bilancia/bilancia/internal/metrics"
)

// DashboardAuthFlags protect the dashboard (--http) beyond loopback.
type DashboardAuthFlags struct {
	HTTPTokenFile string `name:"http-token-file" type:"existingfile" placeholder:"FILE" help:"Require this file's token of the dashboard's visitors (open it as /?token=...; scripts send Authorization: Bearer)."`
	HTTPTLSCert   string `name:"http-tls-cert" type:"existingfile" help:"Serve the dashboard over HTTPS with this certificate."`
	HTTPTLSKey    string `name:"http-tls-key" type:"existingfile" help:"The key of --http-tls-cert."`
	HTTPTLSCA     string `name:"http-tls-ca" type:"existingfile" help:"Also require the dashboard's visitors to bring certificates signed by this CA."`
	HTTPInsecure  bool   `name:"http-insecure" help:"Serve the dashboard beyond loopback without a token or client certificates (refused otherwise)."`
}

// config fills the dashboard's authentication from the flags.
func (f *DashboardAuthFlags) config(c *dashboard.Config) error {
	tok, err := readToken(f.HTTPTokenFile)
	if err != nil {
		return fmt.Errorf("--http-token-file: %w", err)
	}
	c.Token, c.TLSCert, c.TLSKey, c.TLSCA, c.Insecure = tok, f.HTTPTLSCert, f.HTTPTLSKey, f.HTTPTLSCA, f.HTTPInsecure
	return nil
}

// MetricsAuthFlags protect --metrics beyond loopback.
type MetricsAuthFlags struct {
	MetricsTokenFile string `type:"existingfile" placeholder:"FILE" help:"Require this file's token of scrapers of --metrics, as Authorization: Bearer (Prometheus: authorization.credentials_file)."`
	MetricsInsecure  bool   `help:"Serve --metrics beyond loopback without a token (refused otherwise)."`
}

func (f *MetricsAuthFlags) auth() (metrics.Auth, error) {
	tok, err := readToken(f.MetricsTokenFile)
	if err != nil {
		return metrics.Auth{}, fmt.Errorf("--metrics-token-file: %w", err)
	}
	return metrics.Auth{Token: tok, Insecure: f.MetricsInsecure}, nil
}

// minToken is the shortest token taken: a guessable one is no
// authentication.
const minToken = 16

// readToken reads a token file's first line, "" without a file.
func readToken(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	tok, _, _ := strings.Cut(string(b), "\n")
	tok = strings.TrimSpace(tok)
	if len(tok) < minToken || strings.ContainsAny(tok, " \t;,") {
		return "", fmt.Errorf("%s: want a token of at least %d characters, without spaces (e.g. openssl rand -hex 32)", path, minToken)
	}
	return tok, nil
}
