package natsutil

// RetryBudget bounds retries, so that they cannot multiply the load during
// an outage: the requests being retried may be at most Ratio of those in
// flight, or Min, whichever is more. The zero value allows no retries.
type RetryBudget struct {
	Ratio float64
	Min   int
}

// Allows tells whether one more request may be retried while retrying of
// inflight requests already are.
func (b RetryBudget) Allows(inflight, retrying int64) bool {
	allowed := int64(b.Ratio * float64(inflight))
	return retrying < max(allowed, int64(b.Min))
}
