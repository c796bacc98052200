package report

import (
	"fmt"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// WritePlots draws, per scenario, p99 latency against offered load (when
// the scenario swept more than one rate) and closed-loop throughput bars,
// into dir as PREFIX-latency-SCENARIO.png and PREFIX-throughput-SCENARIO.png
// (the prefix keeps a quick run from overwriting the full run's plots). It
// returns the file names relative to dir.
func WritePlots(dir, prefix string, r *Run) (PlotFiles, error) {
	files := PlotFiles{Latency: map[string]string{}, Throughput: map[string]string{}}
	sums := Summarise(r.Measurements)
	for _, sc := range r.Scenarios {
		targets := targetsOf(r, sc.Name)
		if rates := openRates(sums, sc.Name); len(rates) > 1 {
			name := prefix + "-latency-" + sc.Name + ".png"
			if err := latencyPlot(filepath.Join(dir, name), sc.Name, targets, rates, sums); err != nil {
				return files, err
			}
			files.Latency[sc.Name] = name
		}
		name := prefix + "-throughput-" + sc.Name + ".png"
		ok, err := throughputPlot(filepath.Join(dir, name), sc.Name, targets, sums)
		if err != nil {
			return files, err
		}
		if ok {
			files.Throughput[sc.Name] = name
		}
	}
	return files, nil
}

func latencyPlot(path, scenario string, targets []string, rates []float64, sums []Summary) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: p99 latency against offered load (open loop)", scenario)
	p.X.Label.Text = "offered load (req/s)"
	p.Y.Label.Text = "p99 latency (ms, log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Legend.Left = true
	var lines []any
	for _, t := range targets {
		var xys plotter.XYs
		for _, rt := range rates {
			s, ok := Find(sums, Key{scenario, t, "open", rt})
			if !ok || s.P99.Median <= 0 {
				continue
			}
			xys = append(xys, plotter.XY{X: rt, Y: s.P99.Median / 1e6})
		}
		if len(xys) > 0 {
			lines = append(lines, t, xys)
		}
	}
	if len(lines) == 0 {
		return nil
	}
	if err := plotutil.AddLinePoints(p, lines...); err != nil {
		return fmt.Errorf("report: latency plot: %w", err)
	}
	if err := p.Save(8*vg.Inch, 5*vg.Inch, path); err != nil {
		return fmt.Errorf("report: save %s: %w", path, err)
	}
	return nil
}

// barErrs is bar heights with min–max whiskers.
type barErrs struct {
	ys, lo, hi []float64
}

func (b barErrs) Len() int                        { return len(b.ys) }
func (b barErrs) XY(i int) (float64, float64)     { return float64(i), b.ys[i] }
func (b barErrs) YError(i int) (float64, float64) { return b.ys[i] - b.lo[i], b.hi[i] - b.ys[i] }

func throughputPlot(path, scenario string, targets []string, sums []Summary) (bool, error) {
	var names []string
	var be barErrs
	for _, t := range targets {
		s, ok := Find(sums, Key{scenario, t, "closed", 0})
		if !ok {
			continue
		}
		names = append(names, t)
		be.ys = append(be.ys, s.Throughput.Median)
		be.lo = append(be.lo, s.Throughput.Min)
		be.hi = append(be.hi, s.Throughput.Max)
	}
	if len(names) == 0 {
		return false, nil
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: closed-loop throughput (median, min–max)", scenario)
	p.Y.Label.Text = "req/s"
	p.Y.Min = 0
	p.Y.Tick.Marker = wholeTicks{}
	bars, err := plotter.NewBarChart(plotter.Values(slices.Clone(be.ys)), vg.Points(28))
	if err != nil {
		return false, fmt.Errorf("report: throughput plot: %w", err)
	}
	bars.Color = plotutil.Color(0)
	errs, err := plotter.NewYErrorBars(be)
	if err != nil {
		return false, fmt.Errorf("report: throughput plot: %w", err)
	}
	p.Add(bars, errs)
	p.NominalX(names...)
	if err := p.Save(8*vg.Inch, 4*vg.Inch, path); err != nil {
		return false, fmt.Errorf("report: save %s: %w", path, err)
	}
	return true, nil
}

// wholeTicks labels the default ticks without decimals ("50000", not
// "50000.00").
type wholeTicks struct{}

func (wholeTicks) Ticks(min, max float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = fmt.Sprintf("%.0f", ts[i].Value)
		}
	}
	return ts
}
