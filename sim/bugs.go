package sim

import (
	"fmt"
	"strings"

	"github.com/bilancia/bilancia/dispatcher/flight"
)

// Bugs are past bugs the flight core can be made to have again, one at a
// time, to show that the simulator finds them.
type Bugs = flight.Bugs

var bugNames = []string{"park-forever", "no-gone-hold", "resend-forwarded"}

// BugNames lists the names ParseBug takes.
func BugNames() string { return strings.Join(bugNames, ", ") }

// ParseBug returns the bug named, none for "".
func ParseBug(name string) (Bugs, error) {
	var b Bugs
	switch name {
	case "":
	case "park-forever":
		b.ParkForever = true
	case "no-gone-hold":
		b.NoGoneHold = true
	case "resend-forwarded":
		b.ResendForwarded = true
	default:
		return b, fmt.Errorf("no bug %q: the bugs are %s", name, BugNames())
	}
	return b, nil
}
