package explorer

import (
	"fmt"
	"time"
)

// chart is a small SVG drawn on the server: bars (or intervals) in a
// viewBox of Width x Height, with a sentence saying what it shows for
// readers that do not see it.
type chart struct {
	Width, Height int
	Bars          []bar
	Label         string
	Max           string // the value of the top of the scale
	Rows          []row  // interval charts: one row per round
}

type bar struct {
	X, Y, W, H string
	Title      string
}

// row is one round of a dispute: the whole range and the part in play.
type row struct {
	Y, TextY   int
	X, W       string
	Title      string
	Text       string
	Background int // width of the whole range
}

func f1(v float64) string { return fmt.Sprintf("%.1f", v) }

// rateChartBuckets is the number of bars of the receipts-per-second chart.
const rateChartBuckets = 40

// rateChart draws receipts per second over the blocks' times.
func rateChart(blocks []blockStat) chart {
	c := chart{Width: 400, Height: 100}
	if len(blocks) < 2 {
		c.Label = "Not enough blocks yet to chart receipts per second."
		return c
	}
	first, last := blocks[0].Time, blocks[len(blocks)-1].Time
	span := last.Sub(first)
	if span <= 0 {
		c.Label = "The charted blocks share one time: no rate to draw."
		return c
	}
	counts := make([]int, rateChartBuckets)
	total := 0
	// A block's receipts count in the interval that ends at its time:
	// bucket ceil(dt*B/span)-1.
	for _, b := range blocks[1:] {
		dt := int64(b.Time.Sub(first))
		i := int((dt*rateChartBuckets+int64(span)-1)/int64(span)) - 1
		i = min(max(i, 0), rateChartBuckets-1)
		counts[i] += b.Receipts
		total += b.Receipts
	}
	bucket := span.Seconds() / rateChartBuckets
	peak := 0.0
	for _, n := range counts {
		peak = max(peak, float64(n)/bucket)
	}
	scale := peak
	if scale == 0 {
		scale = 1
	}
	w := float64(c.Width) / rateChartBuckets
	for i, n := range counts {
		rate := float64(n) / bucket
		// Products are rounded before they are added (float64(...)): no
		// fused multiply-add, the same bars on every CPU (internal/detcheck).
		h := float64(rate / scale * float64(c.Height-4))
		at := first.Add(time.Duration(float64(float64(span)*float64(i+1)) / rateChartBuckets)).UTC()
		c.Bars = append(c.Bars, bar{X: f1(float64(float64(i) * w)), Y: f1(float64(c.Height) - h), W: f1(w - 1), H: f1(h),
			Title: fmt.Sprintf("%s: %d receipts, %.2f per second", at.Format("15:04:05"), n, rate)})
	}
	c.Max = fmt.Sprintf("%.2f/s", scale)
	c.Label = fmt.Sprintf("%d receipts in the last %s (%d blocks): %.2f per second on average, %.2f at the peak.",
		total, span.Round(time.Second), len(blocks), float64(total)/span.Seconds(), peak)
	return c
}

// roundsChart draws a dispute's rounds as intervals of the cells, each
// inside the one before.
func roundsChart(rounds []roundView, cells int) chart {
	const rowH = 34
	c := chart{Width: 400, Height: rowH * len(rounds)}
	if cells <= 0 {
		return c
	}
	for i, r := range rounds {
		x := float64(float64(r.Start) / float64(cells) * float64(c.Width))
		w := max(float64(float64(r.End-r.Start)/float64(cells)*float64(c.Width)), 2)
		what := fmt.Sprintf("round %d: cells %d to %d (%d of %d)", r.Round, r.Start, r.End-1, r.End-r.Start, cells)
		if r.Leaf {
			what = fmt.Sprintf("round %d: the disputed cell %d", r.Round, r.Start)
		}
		c.Rows = append(c.Rows, row{Y: i*rowH + 18, TextY: i*rowH + 13, X: f1(x), W: f1(w), Title: what, Text: what, Background: c.Width})
	}
	c.Label = fmt.Sprintf("%d rounds narrowing %d cells", len(rounds), cells)
	return c
}
