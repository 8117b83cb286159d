package main

import (
	"fmt"
	"slices"
)

// A burst's ratio to raw moves by several percent between runs on the same
// two shared cores, as much as a change under test may move it; -repeat
// (BENCH_REPEAT) runs each burst several times, each with its own account
// and receiver tally, and reports the spread beside the runs.

// Spread is a repeated scenario's figures over its runs.
type Spread struct {
	Runs            int   `json:"runs"`
	RatioToRaw      Range `json:"ratio_to_raw"`
	DeliveredPerSec Range `json:"delivered_per_second"`
}

// Range is the minimum, median and maximum of a figure over runs.
type Range struct {
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	Max    float64 `json:"max"`
}

// rangeOf is the range of xs (not empty); an even count's median is the
// mean of the middle two.
func rangeOf(xs []float64) Range {
	s := slices.Clone(xs)
	slices.Sort(s)
	median := s[len(s)/2]
	if len(s)%2 == 0 {
		median = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Range{Min: s[0], Median: median, Max: s[len(s)-1]}
}

// format writes the range as "min / median / max" with verb.
func (r Range) format(verb string) string {
	return fmt.Sprintf(verb+" / "+verb+" / "+verb, r.Min, r.Median, r.Max)
}

// summarize is the row after a repeated scenario's runs: its Spread, the
// deliveries of all runs added up, and the median rates.
func summarize(scenario string, runs []Result) Result {
	sum := Result{Scenario: scenario}
	var ratios, rates []float64
	for _, r := range runs {
		sum.Events += r.Events
		sum.Expected += r.Expected
		sum.Delivered += r.Delivered
		sum.Duplicates += r.Duplicates
		sum.Lost += r.Lost
		ratios = append(ratios, r.RatioToRaw)
		rates = append(rates, r.DeliveredPerSec)
	}
	sum.Spread = &Spread{Runs: len(runs), RatioToRaw: rangeOf(ratios), DeliveredPerSec: rangeOf(rates)}
	sum.RatioToRaw, sum.DeliveredPerSec = sum.Spread.RatioToRaw.Median, sum.Spread.DeliveredPerSec.Median
	return sum
}

// label is how the report names a result's row: a repeated scenario's
// runs by their number, the row of their spread by the count.
func (r Result) label() string {
	switch {
	case r.Spread != nil:
		return fmt.Sprintf("%s ×%d", r.Scenario, r.Spread.Runs)
	case r.Run > 0:
		return fmt.Sprintf("%s #%d", r.Scenario, r.Run)
	}
	return r.Scenario
}
