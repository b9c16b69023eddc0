package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/alecthomas/kong"
)

// envPrefix starts every environment variable bilancia reads, but
// NATS_URL and its kin.
const envPrefix = "BILANCIA"

// scriptVars are variables compose.yaml, scripts/ and the tests read for
// themselves: no flag may take them, and they are not stale.
// TestScriptVarsListed finds them in those files.
var scriptVars = []string{
	"BILANCIA_PORT", "BILANCIA_IMAGE", "BILANCIA_QUICK", // compose.yaml, scripts/
	"BILANCIA_CHROMIUM", "BILANCIA_SKIP_BROWSER", "BILANCIA_ARTIFACTS", "BILANCIA_UPDATE_SCREENSHOT", // the browser test
}

// roleEnvars names each flag's environment variable after its command
// path, BILANCIA_<COMMAND PATH>_<FLAG>: BILANCIA_WORKER_ID,
// BILANCIA_DISPATCHER_ID, BILANCIA_HEALTH_WORKER_ID. A setting for one
// role then never changes another's, and a flag added later gets its name
// without being listed anywhere. A flag with an env tag keeps it: the
// connection flags every role shares (NATSFlags) carry one name each, so
// that one environment serves a whole deployment; env:"-" means none.
// kong's help shows each name.
func roleEnvars() kong.Option {
	return kong.PostBuild(func(k *kong.Kong) error {
		var walk func(n *kong.Node)
		walk = func(n *kong.Node) {
			for _, f := range n.Flags {
				switch {
				case f.Name == "help":
				case len(f.Envs) == 1 && f.Envs[0] == "-":
					f.Envs, f.Value.Tag.Envs = nil, nil
				case len(f.Envs) == 0:
					name := envName(commandPath(n), f.Name)
					f.Envs, f.Value.Tag.Envs = []string{name}, []string{name}
				}
			}
			for _, c := range n.Children {
				walk(c)
			}
		}
		walk(k.Model.Node)
		return nil
	})
}

// commandPath is the commands from the root to n: ["health", "worker"].
func commandPath(n *kong.Node) []string {
	var path []string
	for ; n != nil; n = n.Parent {
		if n.Type == kong.CommandNode {
			path = append([]string{n.Name}, path...)
		}
	}
	return path
}

// envName is the variable of flag in the command at path:
// envName([health worker], "seen-by") = BILANCIA_HEALTH_WORKER_SEEN_BY.
func envName(path []string, flag string) string {
	name := strings.Join(append(append([]string{envPrefix}, path...), flag), "_")
	return strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(name))
}

// staleEnv warns of each BILANCIA_ variable in environ that no flag of any
// command reads: a flat name of before (BILANCIA_ID) or a mistyped one,
// which would otherwise be ignored in silence. It names the variable the
// selected command reads for that flag, if it has one.
func staleEnv(k *kong.Kong, selected *kong.Node, environ []string) []string {
	read := knownEnv(k)
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, envPrefix+"_") || read[name] {
			continue
		}
		msg := "warning: " + name + " is set, and no flag reads it (a command's flag reads BILANCIA_<COMMAND>_<FLAG>, see --help)"
		if selected != nil {
			want := envPrefix + "_" + strings.ToUpper(strings.ReplaceAll(strings.Join(commandPath(selected), "_"), "-", "_")) +
				strings.TrimPrefix(name, envPrefix)
			for _, f := range selected.Flags {
				if slices.Contains(f.Envs, want) {
					msg = "warning: " + name + " is set, and no flag reads it: did you mean " + want + "?"
				}
			}
		}
		out = append(out, msg)
	}
	return out
}

// envTable is README's list of the variables, a row per command that has
// any, the connection flags in a row of their own, from the model itself:
// TestREADMEEnvironment keeps README.md equal to it.
func envTable(k *kong.Kong) string {
	var b strings.Builder
	b.WriteString("| command | variables |\n| --- | --- |\n")
	var shared []string
	seen := map[string]bool{}
	var walk func(n *kong.Node)
	walk = func(n *kong.Node) {
		own := envPrefix + "_" + strings.ToUpper(strings.ReplaceAll(strings.Join(commandPath(n), "_"), "-", "_")) + "_"
		var names []string
		for _, f := range n.Flags {
			if len(f.Envs) == 0 || f.Hidden {
				continue
			}
			if n.Type == kong.CommandNode && strings.HasPrefix(f.Envs[0], own) {
				names = append(names, "`"+strings.TrimPrefix(f.Envs[0], own)+"`")
				continue
			}
			if key := strings.Join(f.Envs, ", "); !seen[key] {
				seen[key] = true
				shared = append(shared, "`"+strings.Join(f.Envs, "`, `")+"`")
			}
		}
		if len(names) > 0 {
			fmt.Fprintf(&b, "| `%s` | `%s…`: %s |\n", strings.Join(commandPath(n), " "), own, strings.Join(names, ", "))
		}
		for _, c := range n.Children {
			if !c.Hidden {
				walk(c)
			}
		}
	}
	walk(k.Model.Node)
	fmt.Fprintf(&b, "| every role, one name each | %s |\n", strings.Join(shared, "; "))
	return b.String()
}

// knownEnv is every variable something reads: a flag of any command, or
// compose, a script or a test (scriptVars).
func knownEnv(k *kong.Kong) map[string]bool {
	known := map[string]bool{}
	for _, v := range scriptVars {
		known[v] = true
	}
	var walk func(n *kong.Node)
	walk = func(n *kong.Node) {
		for _, f := range n.Flags {
			for _, e := range f.Envs {
				known[e] = true
			}
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(k.Model.Node)
	return known
}
