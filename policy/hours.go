package policy

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sluis-gateway/sluis"
)

var dayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// ParseHours reads a span of the week: days, then a time range, as in
// "mon-fri 07:00-19:00", "sat,sun 10:00-14:00" or "daily 00:00-24:00".
// Days are three-letter English names (case does not matter), ranges of
// them ("fri-mon" wraps), lists of both separated by commas, or "daily";
// without days, every day. Times are HH:MM, 00:00 to 24:00; a range that
// ends before it starts runs past midnight ("22:00-06:00").
func ParseHours(s string) (sluis.Hours, error) {
	h := sluis.Hours{Text: strings.Join(strings.Fields(s), " ")}
	f := strings.Fields(strings.ToLower(s))
	var days, times string
	switch len(f) {
	case 1:
		days, times = "daily", f[0]
	case 2:
		days, times = f[0], f[1]
	default:
		return h, fmt.Errorf("%q: want days and times, like mon-fri 07:00-19:00", s)
	}
	if days == "daily" {
		h.Days = 0x7f
	} else {
		for _, part := range strings.Split(days, ",") {
			first, last, isRange := strings.Cut(part, "-")
			a, b := dayIndex(first), dayIndex(last)
			if !isRange {
				b = a
			}
			if a < 0 || b < 0 {
				return h, fmt.Errorf("%q: %q is not a day (mon, tue, wed, thu, fri, sat, sun, or daily)", s, part)
			}
			for d := a; ; d = (d + 1) % 7 {
				h.Days |= 1 << d
				if d == b {
					break
				}
			}
		}
	}
	from, to, ok := strings.Cut(times, "-")
	if !ok {
		return h, fmt.Errorf("%q: want a time range like 07:00-19:00", s)
	}
	var err error
	if h.From, err = clock(from); err != nil {
		return h, fmt.Errorf("%q: %v", s, err)
	}
	if h.To, err = clock(to); err != nil {
		return h, fmt.Errorf("%q: %v", s, err)
	}
	if h.From == h.To || h.From == 24*60 {
		return h, fmt.Errorf("%q: an empty time range", s)
	}
	return h, nil
}

func dayIndex(s string) int {
	for i, n := range dayNames {
		if s == n {
			return i
		}
	}
	return -1
}

// clock reads HH:MM as minutes since midnight.
func clock(s string) (int, error) {
	hh, mm, ok := strings.Cut(s, ":")
	h, err1 := strconv.Atoi(hh)
	m, err2 := strconv.Atoi(mm)
	if !ok || err1 != nil || err2 != nil || len(hh) != 2 || len(mm) != 2 || h < 0 || m < 0 || m > 59 || h > 24 || h == 24 && m != 0 {
		return 0, fmt.Errorf("%q is not a time of day HH:MM (00:00 to 24:00)", s)
	}
	return h*60 + m, nil
}

// InHours reports whether now, read in zone (nil: UTC), falls in one of
// the spans.
func InHours(spans []sluis.Hours, now time.Time, zone *time.Location) bool {
	if zone == nil {
		zone = time.UTC
	}
	t := now.In(zone)
	day := uint8(t.Weekday())
	prev := (day + 6) % 7
	m := t.Hour()*60 + t.Minute()
	for _, h := range spans {
		if h.From < h.To {
			if h.Days&(1<<day) != 0 && m >= h.From && m < h.To {
				return true
			}
			continue
		}
		// Past midnight: the evening of a listed day, or the early
		// morning after one.
		if h.Days&(1<<day) != 0 && m >= h.From || h.Days&(1<<prev) != 0 && m < h.To {
			return true
		}
	}
	return false
}

func hoursText(spans []sluis.Hours, zone *time.Location) string {
	s := make([]string, len(spans))
	for i, h := range spans {
		s[i] = h.Text
	}
	name := "UTC"
	if zone != nil {
		name = zone.String()
	}
	return strings.Join(s, ", ") + " (" + name + ")"
}
