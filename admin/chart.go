package admin

import (
	"fmt"
	"strconv"
	"time"
)

// chart is the overview's bar chart of probes and blocked requests per
// hour over the last 24 hours, drawn here as SVG shapes (no script, no
// inline style: presentation attributes and the console's stylesheet).
type chart struct {
	Width, Height int
	Bars          []chartBar
	Labels        []chartLabel
	Max           int64
	// Probes and Blocked are the totals over the 24 hours.
	Probes, Blocked int64
	Base            int // the y of the axis
}

type chartBar struct {
	X, Y, W, H int
	Class      string // probes or blocked
	Title      string // the hour and the count, for a tooltip
}

type chartLabel struct {
	X, Y   int
	Text   string
	Anchor string
}

// Sizes of the chart, in SVG units.
const (
	chartWidth  = 720
	chartHeight = 180
	chartLeft   = 40 // room for the scale
	chartBottom = 20 // room for the hours
	chartTop    = 10
)

// hourlyChart lays out hours (oldest first) as pairs of bars.
func hourlyChart(hours []HourCount, zone *time.Location) chart {
	c := chart{Width: chartWidth, Height: chartHeight, Base: chartHeight - chartBottom}
	for _, h := range hours {
		c.Max = max(c.Max, h.Probes, h.Blocked)
		c.Probes += h.Probes
		c.Blocked += h.Blocked
	}
	scale := c.Max
	if scale == 0 {
		scale = 1
	}
	plot := c.Base - chartTop
	n := max(len(hours), 1)
	slot := (chartWidth - chartLeft) / n
	bar := max(slot/2-1, 1)
	height := func(v int64) int {
		if v == 0 {
			return 0
		}
		return max(int(v*int64(plot)/scale), 1) // a count is never invisible
	}
	for i, h := range hours {
		x := chartLeft + i*slot
		hour := h.Start.In(zone)
		when := hour.Format("15:04") + "-" + hour.Add(time.Hour).Format("15:04")
		if hp := height(h.Probes); hp > 0 {
			c.Bars = append(c.Bars, chartBar{X: x, Y: c.Base - hp, W: bar, H: hp, Class: "probes", Title: fmt.Sprintf("%s: %d probe events", when, h.Probes)})
		}
		if hb := height(h.Blocked); hb > 0 {
			c.Bars = append(c.Bars, chartBar{X: x + bar, Y: c.Base - hb, W: bar, H: hb, Class: "blocked", Title: fmt.Sprintf("%s: %d requests refused by a block", when, h.Blocked)})
		}
		if i%3 == 0 {
			c.Labels = append(c.Labels, chartLabel{X: x, Y: chartHeight - 5, Text: hour.Format("15:04"), Anchor: "start"})
		}
	}
	c.Labels = append(c.Labels, chartLabel{X: chartLeft - 4, Y: c.Base, Text: "0", Anchor: "end"})
	if c.Max > 0 {
		c.Labels = append(c.Labels, chartLabel{X: chartLeft - 4, Y: chartTop + 8, Text: strconv.FormatInt(c.Max, 10), Anchor: "end"})
	}
	return c
}
