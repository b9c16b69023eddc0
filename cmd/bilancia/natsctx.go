package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go"
)

// natsContext is a context of the nats CLI (nats context save): the
// fields of its JSON file that a connection uses, named as the CLI names
// them.
type natsContext struct {
	URL         string `json:"url"`
	Token       string `json:"token"`
	User        string `json:"user"`
	Password    string `json:"password"`
	Creds       string `json:"creds"`
	NKey        string `json:"nkey"`
	Cert        string `json:"cert"`
	Key         string `json:"key"`
	CA          string `json:"ca"`
	InboxPrefix string `json:"inbox_prefix"`
	UserJWT     string `json:"user_jwt"`
	UserSeed    string `json:"user_seed"`
	TLSFirst    bool   `json:"tls_first"`
	SocksProxy  string `json:"socks_proxy"`
	NSC         string `json:"nsc"`
}

// natsConfigDir is where the nats CLI keeps its contexts:
// $XDG_CONFIG_HOME/nats, else ~/.config/nats.
func natsConfigDir() (string, error) {
	if dir := os.Getenv("XDG_CONFIG_HOME"); dir != "" {
		return filepath.Join(dir, "nats"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".config", "nats"), nil
}

// selectedContext is the context that nats context select chose, or ""
// when none is.
func selectedContext() string {
	dir, err := natsConfigDir()
	if err != nil {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(dir, "context.txt"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// loadContext reads the context name: a name the nats CLI saved, or the
// path of a context's JSON file.
func loadContext(name string) (*natsContext, error) {
	path := name
	if !strings.ContainsAny(name, `/\`) {
		if name == "" || strings.Contains(name, "..") {
			return nil, fmt.Errorf("nats context %q: not a context name", name)
		}
		dir, err := natsConfigDir()
		if err != nil {
			return nil, fmt.Errorf("nats context %s: %w", name, err)
		}
		path = filepath.Join(dir, "context", name+".json")
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("nats context %s: no such context (%s; nats context ls lists them)", name, path)
	}
	if err != nil {
		return nil, fmt.Errorf("nats context %s: %w", name, err)
	}
	var c natsContext
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("nats context %s: %s: %w", name, path, err)
	}
	for _, p := range []*string{&c.Creds, &c.NKey, &c.Cert, &c.Key, &c.CA} {
		*p = expandPath(strings.TrimPrefix(*p, "file://"))
	}
	switch {
	case c.NSC != "" || strings.Contains(c.Creds, "://") || strings.Contains(c.NKey, "://"):
		return nil, fmt.Errorf("nats context %s: credentials looked up elsewhere (nsc, op:// and the like) are not read here; give bilancia the file with --creds", name)
	case c.SocksProxy != "":
		return nil, fmt.Errorf("nats context %s: a SOCKS proxy is not supported", name)
	case c.UserJWT != "" && c.UserSeed == "":
		return nil, fmt.Errorf("nats context %s: user_jwt without user_seed is not supported; give bilancia a --creds file", name)
	}
	return &c, nil
}

// expandPath expands environment variables and a leading ~, as the nats
// CLI does with a context's file names.
func expandPath(p string) string {
	p = os.ExpandEnv(p)
	if rest, ok := strings.CutPrefix(p, "~"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return home + rest
		}
	}
	return p
}

// resolve fills what the flags leave empty from the nats context named by
// --context or, when neither --context nor --nats is given, from the one
// the nats CLI has selected; flags win over the context, as with the nats
// CLI. Without either, the server is nats.DefaultURL. Once is enough.
func (f *NATSFlags) resolve() error {
	if f.resolved {
		return nil
	}
	name := f.Context
	if name == "" && f.NATS == "" {
		name = selectedContext()
		if name != "" {
			// Said, so that nobody reaches another cluster unawares.
			fmt.Fprintf(os.Stderr, "bilancia: connecting as nats context %s, the one nats context select chose (--nats or --context to choose)\n", name)
		}
	}
	if name != "" {
		c, err := loadContext(name)
		if err != nil {
			return err
		}
		f.apply(name, c)
	}
	if f.NATS == "" {
		f.NATS = nats.DefaultURL
	}
	f.resolved = true
	return nil
}

// apply takes from c what the flags leave empty. The context's credential
// counts only when the flags give none.
func (f *NATSFlags) apply(name string, c *natsContext) {
	f.contextName = name
	fill := func(flag *string, v string) {
		if *flag == "" {
			*flag = v
		}
	}
	fill(&f.NATS, c.URL)
	if f.Creds == "" && f.NKey == "" && f.User == "" && f.Token == "" {
		f.contextCreds = true
		f.Creds, f.NKey, f.User, f.Password, f.Token = c.Creds, c.NKey, c.User, c.Password, c.Token
		if c.UserJWT != "" {
			f.contextOpts = append(f.contextOpts, nats.UserJWTAndSeed(c.UserJWT, c.UserSeed))
		}
	}
	fill(&f.TLSCert, c.Cert)
	fill(&f.TLSKey, c.Key)
	fill(&f.TLSCA, c.CA)
	fill(&f.InboxPrefix, c.InboxPrefix)
	if c.TLSFirst {
		f.contextOpts = append(f.contextOpts, nats.TLSHandshakeFirst())
	}
}
