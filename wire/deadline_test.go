package wire

import (
	"strings"
	"testing"
	"time"
)

// Every 504 names its deadline and what raises it.
func TestDeadlineError(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  *Error
		want []string
	}{
		{"client", DeadlineError(DeadlineClient, 10*time.Second, 2), []string{"client's deadline of 10s", "2 sends", "--timeout"}},
		{"request", DispatcherDeadline("12000", 12*time.Second, 1), []string{"request's deadline of 12s", "1 attempt;", "Calc-Timeout-Ms", "--timeout"}},
		{"default", DispatcherDeadline("", 35*time.Second, 3), []string{"dispatcher's deadline of 35s", "without Calc-Timeout-Ms", "3 attempts", "--request-timeout"}},
		{"bad header", DispatcherDeadline("soon", 35*time.Second, 1), []string{"without Calc-Timeout-Ms", "--request-timeout"}},
		{"capped", DispatcherDeadline("600000", 5*time.Minute, 1), []string{"longest deadline, 5m0s", "--max-request-timeout"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err.Code != CodeDeadline {
				t.Errorf("code = %d; want %d", tc.err.Code, CodeDeadline)
			}
			for _, w := range tc.want {
				if !strings.Contains(tc.err.Message, w) {
					t.Errorf("message %q lacks %q", tc.err.Message, w)
				}
			}
		})
	}
}
