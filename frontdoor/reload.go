package frontdoor

// Inherit takes over what old remembers of the sources that probed (their
// recent probes toward a block, and the probes folded into an event not
// yet written), for a detector that replaces old with new limits when the
// configuration is reloaded: a reload neither forgives a scanner halfway
// to its block nor loses the counts the trail is owed. old must not be
// used afterwards; a probe it still counts (a request that began before
// the reload) is counted there alone.
func (d *Detector) Inherit(old *Detector) {
	if old == nil || old == d {
		return
	}
	old.mu.Lock()
	sources := old.sources
	old.sources = nil
	old.mu.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sources == nil {
		d.sources = make(map[string]*sourceState, len(sources))
	}
	for k, s := range sources {
		if _, ok := d.sources[k]; !ok {
			d.sources[k] = s
		}
	}
}
