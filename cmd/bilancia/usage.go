package main

import (
	"errors"
	"strings"

	"github.com/alecthomas/kong"
)

// newParser is the command line's parser, help and version included.
func newParser(cli *CLI, opts ...kong.Option) (*kong.Kong, error) {
	return kong.New(cli, append([]kong.Option{
		kong.Name("bilancia"),
		kong.Description("A load balancer for compute requests on NATS."),
		roleEnvars(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		kong.Vars{"version": versionString()},
	}, opts...)...)
}

// commandLine is the arguments to parse: bilancia alone shows its help,
// not an error.
func commandLine(args []string) []string {
	if len(args) == 0 {
		return []string{"--help"}
	}
	return args
}

// usageError is what a mistyped command line prints: the error and where
// the usage is, not the whole usage.
//
//	bilancia: unknown flag --verbos, did you mean one of "-v", "--version"?
//	run "bilancia client --help" for its flags
func usageError(err error) string {
	cmd := "bilancia"
	var pe *kong.ParseError
	if errors.As(err, &pe) && pe.Context != nil {
		for _, p := range pe.Context.Path {
			if p.Command != nil {
				cmd += " " + p.Command.Name
			}
		}
	}
	what := "its flags"
	if cmd == "bilancia" {
		what = "the commands"
	}
	return "bilancia: " + strings.TrimPrefix(err.Error(), "bilancia: ") + "\n" +
		`run "` + cmd + ` --help" for ` + what + "\n"
}

// exitCode is the exit status of a usage error: kong's (80), else 1.
func exitCode(err error) int {
	var ec kong.ExitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	return 1
}
