package sim

import (
	"fmt"
	"strings"
)

// Bugs are past bugs the flight core can be made to have again, one at a
// time, to show the simulator finds them (flight.Bugs).
type Bugs struct {
	// ParkForever: a request whose last attempt fell silent waits for
	// its deadline instead of being parked to go out again (before 3a847f1).
	ParkForever bool
	// NoGoneHold: no hold when the last workers went down on "no
	// responders" (before 900a110).
	NoGoneHold bool
	// ResendForwarded: a client's resend is forwarded again instead of
	// joining the request held.
	ResendForwarded bool
}

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
