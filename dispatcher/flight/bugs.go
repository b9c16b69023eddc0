package flight

// Bugs puts past bugs back into the core, one switch each, so that the
// simulator (package sim) can show that it finds them. Tests alone set
// it; the zero value, the only one a real dispatcher uses, has none.
type Bugs struct {
	// ParkForever: a request whose last allowed attempt fell silent
	// waits for its deadline instead of being parked, to go out again
	// when a worker comes up or one in rotation is heard (before 3a847f1).
	ParkForever bool
	// NoGoneHold: no hold when the last live workers went down on "no
	// responders": requests get their 503 at once, while workers whose
	// broker died are still moving to another (before 900a110).
	NoGoneHold bool
	// ResendForwarded: a client's resend of a request open here is
	// forwarded again instead of joining it.
	ResendForwarded bool
}
