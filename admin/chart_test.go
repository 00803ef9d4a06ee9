package admin

import (
	"testing"
	"time"
)

// The chart's bars stand on one axis, scaled to the busiest hour; an hour
// with a count is never drawn as nothing, one without is not drawn.
func TestAdminHourlyChart(t *testing.T) {
	start := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	hours := make([]HourCount, 24)
	for i := range hours {
		hours[i].Start = start.Add(time.Duration(i) * time.Hour)
	}
	hours[3].Probes, hours[3].Blocked = 1000, 1
	hours[23].Probes = 500
	c := hourlyChart(hours, time.UTC)
	if c.Max != 1000 || c.Probes != 1500 || c.Blocked != 1 || len(c.Bars) != 3 {
		t.Fatalf("chart: %+v", c)
	}
	for _, b := range c.Bars {
		if b.Y+b.H != c.Base || b.H < 1 || b.X < chartLeft || b.X+b.W > c.Width {
			t.Errorf("bar off the axis or the chart: %+v", b)
		}
	}
	if c.Bars[0].H != c.Base-chartTop || c.Bars[1].H != 1 || c.Bars[2].H != (c.Base-chartTop)/2 {
		t.Errorf("heights: %+v", c.Bars)
	}
	if c.Bars[0].Title != "03:00-04:00: 1000 probe events" {
		t.Errorf("title %q", c.Bars[0].Title)
	}
	if empty := hourlyChart(make([]HourCount, 24), time.UTC); len(empty.Bars) != 0 || empty.Max != 0 {
		t.Errorf("an empty chart: %+v", empty)
	}
}
