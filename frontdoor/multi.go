package frontdoor

// multi finds which of many short patterns occur in a text in one pass:
// a bit per two-byte prefix says where a pattern may start, and only there
// are the patterns with that prefix compared. Ordinary text sets few of
// those bits, so the cost is about one table lookup a byte however many
// patterns there are.
type multi struct {
	pats  [][]byte
	bits  [1 << 16 / 64]uint64
	byKey map[uint16][]int
	ones  [256][]int // patterns of one byte
}

func newMulti(pats [][]byte) *multi {
	m := &multi{pats: pats, byKey: map[uint16][]int{}}
	for i, p := range pats {
		switch len(p) {
		case 0:
			panic("frontdoor: empty pattern")
		case 1:
			m.ones[p[0]] = append(m.ones[p[0]], i)
		default:
			k := uint16(p[0])<<8 | uint16(p[1])
			m.bits[k/64] |= 1 << (k % 64)
			m.byKey[k] = append(m.byKey[k], i)
		}
	}
	return m
}

// each calls fn with the index of every pattern found in b (a pattern
// found at several places, several times) until fn returns false.
func (m *multi) each(b []byte, fn func(int) bool) {
	for i := 0; i < len(b); i++ {
		for _, j := range m.ones[b[i]] {
			if !fn(j) {
				return
			}
		}
		if i+1 == len(b) {
			break
		}
		k := uint16(b[i])<<8 | uint16(b[i+1])
		if m.bits[k/64]&(1<<(k%64)) == 0 {
			continue
		}
		for _, j := range m.byKey[k] {
			p := m.pats[j]
			if len(b)-i >= len(p) && string(b[i:i+len(p)]) == string(p) {
				if !fn(j) {
					return
				}
			}
		}
	}
}

// any reports whether any pattern occurs in b.
func (m *multi) any(b []byte) bool {
	found := false
	m.each(b, func(int) bool { found = true; return false })
	return found
}

// classes finds, in one pass, which of several pattern lists occur in a
// text: found returns a bit per list (bit 0 for the first).
type classes struct {
	m    *multi
	bits []uint32
}

func newClasses(lists ...*multi) *classes {
	c := &classes{}
	var pats [][]byte
	for i, l := range lists {
		for _, p := range l.pats {
			pats = append(pats, p)
			c.bits = append(c.bits, 1<<i)
		}
	}
	c.m = newMulti(pats)
	return c
}

func (c *classes) found(b []byte) uint32 {
	var mask uint32
	c.m.each(b, func(j int) bool { mask |= c.bits[j]; return true })
	return mask
}
