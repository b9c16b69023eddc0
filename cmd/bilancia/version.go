package main

import (
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/bilancia/bilancia/wire"
)

// buildTime is when the binary was built, if the build says so:
// go build -ldflags "-X main.buildTime=$(date -u +%Y-%m-%dT%H:%M:%SZ)".
// Go itself records no build time, so that builds are reproducible.
var buildTime string

// VersionCmd prints the version.
type VersionCmd struct{}

func (VersionCmd) Run() error {
	fmt.Println(versionString())
	return nil
}

// versionString is the version of this binary, e.g.
//
//	bilancia 0.1.0 (module v0.2.0, commit 1a2b3c4d5e6f, modified, committed 2026-12-02T08:00:00Z, go1.26.8)
//
// from the build info: the module's version when built by `go install
// ...@version`, the commit when built from a checkout (vcs.revision,
// vcs.modified for uncommitted changes, vcs.time its time).
func versionString() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		info = nil
	}
	return formatVersion(wire.Version, info, buildTime)
}

func formatVersion(version string, info *debug.BuildInfo, built string) string {
	var parts []string
	if info != nil {
		settings := map[string]string{}
		for _, s := range info.Settings {
			settings[s.Key] = s.Value
		}
		rev := settings["vcs.revision"]
		rev = rev[:min(len(rev), 12)]
		// From a checkout, Go makes a pseudo-version of the commit
		// (v0.0.0-20261202083013-4449d05fb989+dirty): the commit says it.
		if v := info.Main.Version; v != "" && v != "(devel)" && (rev == "" || !strings.Contains(v, rev)) {
			parts = append(parts, "module "+v)
		}
		if rev != "" {
			parts = append(parts, "commit "+rev)
		}
		if settings["vcs.modified"] == "true" {
			parts = append(parts, "modified")
		}
		if t := settings["vcs.time"]; t != "" {
			parts = append(parts, "committed "+t)
		}
	}
	if built != "" {
		parts = append(parts, "built "+built)
	}
	if info != nil && info.GoVersion != "" {
		parts = append(parts, info.GoVersion)
	}
	s := "bilancia " + version
	if len(parts) > 0 {
		s += " (" + strings.Join(parts, ", ") + ")"
	}
	return s
}
