package dispatcher

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestWithDefaults: zero fields get the defaults, derived fields follow
// the fields they derive from, and fields set are kept.
func TestWithDefaults(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    Config
		check func(c Config) string // "" when right
	}{
		{"zero config", Config{}, func(c Config) string {
			want := DefaultConfig()
			want.ID, want.Subject, want.Logger, want.RequestLogger = c.ID, "calc.request", c.Logger, c.Logger
			if !reflect.DeepEqual(c, want) {
				return "not DefaultConfig"
			}
			if c.Heartbeat != time.Second || c.DeadAfter != 3*time.Second || c.RequestTimeout != 35*time.Second ||
				c.MaxRequestTimeout != 5*time.Minute || c.AttemptTimeout != time.Second || c.MaxAttempts != 3 ||
				c.HedgeAfter != 0 || c.ProgressInterval != 100*time.Millisecond ||
				c.RetryBudget != 0.2 || c.MinRetries != 10 || c.MaxInflight != 10000 || c.Strategy != RoundRobin ||
				c.Tick != 5*time.Millisecond || c.LogQueue != 1<<14 || c.Prefix != "calc" ||
				c.Outlier != (OutlierConfig{Consecutive: 5, BaseEjection: 5 * time.Second, MaxEjection: time.Minute}) {
				return "not the documented defaults"
			}
			if !strings.HasPrefix(c.ID, "d-") || len(c.ID) != len("d-")+16 || c.Logger == nil {
				return "no id or no logger"
			}
			return ""
		}},
		{"DeadAfter follows Heartbeat", Config{Heartbeat: 100 * time.Millisecond}, func(c Config) string {
			if c.DeadAfter != 300*time.Millisecond {
				return "DeadAfter is not 3 heartbeats"
			}
			return ""
		}},
		{"Subject follows Prefix", Config{Prefix: "x"}, func(c Config) string {
			if c.Subject != "x.request" {
				return "Subject is not <prefix>.request"
			}
			return ""
		}},
		{"negative values mean the defaults", Config{Tick: -1, MaxAttempts: -2, RetryBudget: -0.5}, func(c Config) string {
			if c.Tick != 5*time.Millisecond || c.MaxAttempts != 3 || c.RetryBudget != 0.2 {
				return "negative values kept"
			}
			return ""
		}},
		{"negative Consecutive turns outlier detection off", Config{Outlier: OutlierConfig{Consecutive: -1}}, func(c Config) string {
			if c.Outlier != (OutlierConfig{Consecutive: -1, BaseEjection: 5 * time.Second, MaxEjection: time.Minute}) {
				return "Consecutive not kept"
			}
			return ""
		}},
		{"fields set are kept", Config{ID: "d-1", Subject: "calc.canary", Heartbeat: 2 * time.Second, DeadAfter: time.Second,
			MaxAttempts: 1, RetryBudget: 0.5, MinRetries: 1, Strategy: LeastInflight, LogQueue: 8}, func(c Config) string {
			if c.ID != "d-1" || c.Subject != "calc.canary" || c.Heartbeat != 2*time.Second || c.DeadAfter != time.Second ||
				c.MaxAttempts != 1 || c.RetryBudget != 0.5 || c.MinRetries != 1 || c.Strategy != LeastInflight || c.LogQueue != 8 {
				return "a field set was changed"
			}
			return ""
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.in.withDefaults()
			if msg := tc.check(c); msg != "" {
				t.Errorf("withDefaults(%+v) = %+v: %s", tc.in, c, msg)
			}
		})
	}
}
