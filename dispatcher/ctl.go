package dispatcher

// Drain takes worker id out of this dispatcher's rotation: it gets no new
// forwards, keeps the requests it holds, and its heartbeats do not bring
// it back; Resume does. id need not be known yet: the drain applies when
// the worker appears. Draining a drained worker changes nothing. An
// invalid id, or a new drain beyond Config.MaxWorkers drained ids, is
// refused with an error and changes nothing.
func (d *Dispatcher) Drain(id string) error {
	_, err := d.drain(id, true)
	return err
}

// Resume puts worker id back in rotation after Drain; its state is again
// what its heartbeats say. Resuming a worker not drained changes nothing.
func (d *Dispatcher) Resume(id string) error {
	_, err := d.drain(id, false)
	return err
}

// Drained lists the workers drained on this dispatcher, sorted by id.
func (d *Dispatcher) Drained() []string { return d.mem.Drained() }

// drain drains or resumes id, and logs what changed.
func (d *Dispatcher) drain(id string, on bool) (drainResult, error) {
	res, err := d.mem.setDrained(id, on)
	if err != nil || !res.changed {
		return res, err
	}
	msg := "worker resumed"
	if on {
		msg = "worker drained"
	}
	d.log.Info(msg, "worker", id, "state", res.state, "known", res.known)
	return res, nil
}
