package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/alecthomas/kong"
	"github.com/posener/complete"
	"github.com/willabides/kongplete"
)

// completeCommandLine answers a shell asking for completions (COMP_LINE
// set) and exits; otherwise it does nothing. Flags tagged
// predictor:"file" complete file names.
func completeCommandLine(parser *kong.Kong, opts ...kongplete.Option) {
	kongplete.Complete(parser, append([]kongplete.Option{
		kongplete.WithPredictor("file", complete.PredictFiles("*")),
	}, opts...)...)
}

// CompletionCmd prints a shell's completion script. The scripts call
// bilancia itself to complete (kongplete answers when the shell sets
// COMP_LINE), so they never go stale as commands and flags change.
type CompletionCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"bash, zsh or fish."`
}

func (c *CompletionCmd) Run() error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if abs, err := filepath.EvalSymlinks(exe); err == nil {
		exe = abs
	}
	fmt.Print(completionScript(c.Shell, exe))
	return nil
}

// completionScript is the script for shell (bash, zsh or fish) that asks
// the binary at exe to complete the command line.
func completionScript(shell, exe string) string {
	q := shellQuote(exe)
	switch shell {
	case "bash":
		return "# bash: source <(bilancia completion bash), e.g. in ~/.bashrc\n" +
			"complete -o default -C " + q + " bilancia\n"
	case "zsh":
		return "# zsh: source <(bilancia completion zsh), e.g. in ~/.zshrc\n" +
			"autoload -U +X bashcompinit && bashcompinit\n" +
			"complete -o default -C " + q + " bilancia\n"
	case "fish":
		return "# fish: bilancia completion fish | source, e.g. in ~/.config/fish/config.fish\n" +
			"function __complete_bilancia\n" +
			"    set -lx COMP_LINE (commandline -cp)\n" +
			"    test -z (commandline -ct)\n" +
			"    and set COMP_LINE \"$COMP_LINE \"\n" +
			"    " + q + "\n" +
			"end\n" +
			"complete -f -c bilancia -a \"(__complete_bilancia)\"\n"
	}
	return ""
}

// shellQuote quotes s for bash, zsh and fish alike.
func shellQuote(s string) string {
	out := "'"
	for _, r := range s {
		if r == '\'' {
			out += `'\''`
			continue
		}
		out += string(r)
	}
	return out + "'"
}
