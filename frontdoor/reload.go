package frontdoor

// Inherit makes d, a detector that replaces old with new limits when the
// configuration is reloaded, share what old remembers of the sources that
// probed (their recent probes toward a block, and the probes folded into
// an event not yet written): a reload neither forgives a scanner halfway
// to its block nor loses the counts the trail is owed. The two share one
// table rather than d taking a copy, so a probe that old still counts (a
// request that began before the reload, or came in before the new state
// was installed) is not lost either, and a folded count is written once,
// by whichever detector flushes first. What d remembered itself before
// (nothing, when it has not served yet) is kept where old knows nothing
// of the source.
func (d *Detector) Inherit(old *Detector) {
	if old == nil || old == d {
		return
	}
	shared := old.table()
	if mine := d.tab.Load(); mine != nil && mine != shared {
		mine.mu.Lock()
		shared.mu.Lock()
		for k, s := range mine.sources {
			if _, ok := shared.sources[k]; !ok {
				shared.sources[k] = s
			}
		}
		shared.mu.Unlock()
		mine.mu.Unlock()
	}
	d.tab.Store(shared)
}
