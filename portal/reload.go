package portal

// Inherit takes over what old holds in memory and must outlive a reload
// of the configuration, for a portal built from the new configuration
// that replaces old: the CSRF key (a login form loaded before the reload
// is still accepted after it), the throttles of password, code, device and
// browser guesses (a reload forgives no one's guesses), the slots of
// directory logins in flight, and the queue places of logins told busy. Call it after Init and before the portal
// serves; old is not used afterwards.
func (p *Portal) Inherit(old *Portal) {
	if old == nil || old == p {
		return
	}
	p.csrfKey = old.csrfKey
	p.UserSourceThrottle, p.UserThrottle, p.SourceThrottle = old.UserSourceThrottle, old.UserThrottle, old.SourceThrottle
	p.browserThrottle, p.deviceThrottle = old.browserThrottle, old.deviceThrottle
	p.directorySlots = old.directorySlots
	p.places = old.places
}
