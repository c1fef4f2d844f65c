package main

import (
	"math"
	"slices"
)

// The statistics of the report. Every row has a handful of rounds (one
// measurement each, implementations alternating), so riobench uses
// order statistics only: the median of the rounds, their range, and for a
// comparison the ratio of two medians with the range of the per-round
// ratios beside it. With n independent rounds, the range of the rounds
// holds the median of their distribution with probability 1 - 2^(1-n)
// (75% for 3 rounds, 94% for 5): see coverage.

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// summary is the median and range of some rounds.
type summary struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

func summarize(v []float64) summary {
	if len(v) == 0 {
		return summary{}
	}
	s := summary{Median: median(v), Min: v[0], Max: v[0]}
	for _, x := range v {
		s.Min, s.Max = math.Min(s.Min, x), math.Max(s.Max, x)
	}
	return s
}

// spread is (max - min) / median: how far apart the rounds were.
func (s summary) spread() float64 {
	if s.Median == 0 {
		return 0
	}
	return (s.Max - s.Min) / s.Median
}

// pairedRatios divides each round of a by the round of b with the same
// round number: the two ran seconds apart, so they saw the same machine.
// Rounds missing on either side (a failed measurement) are left out.
func pairedRatios(a []float64, aRounds []int, b []float64, bRounds []int) []float64 {
	byRound := map[int]float64{}
	for i, r := range bRounds {
		byRound[r] = b[i]
	}
	var out []float64
	for i, r := range aRounds {
		if d, ok := byRound[r]; ok && d != 0 {
			out = append(out, a[i]/d)
		}
	}
	return out
}

// comparison is a row against its group's baseline: the ratio of the two
// medians (so that it never contradicts the medians printed beside it)
// and the lowest and highest per-round ratio. When both rows have the same
// rounds, the ratio of medians lies within that range: if every round of a
// is at least c times the same round of b, a's median is at least c times
// b's (order statistics keep the order of the rounds they come from).
type comparison struct {
	Ratio    float64 `json:"ratio"`
	RatioMin float64 `json:"ratio_min"`
	RatioMax float64 `json:"ratio_max"`
	Pairs    int     `json:"pairs"`
}

func compare(a []float64, aRounds []int, b []float64, bRounds []int) (comparison, bool) {
	mb := median(b)
	if len(a) == 0 || mb == 0 {
		return comparison{}, false
	}
	c := comparison{Ratio: median(a) / mb}
	pr := pairedRatios(a, aRounds, b, bRounds)
	c.Pairs = len(pr)
	if len(pr) == 0 {
		c.RatioMin, c.RatioMax = c.Ratio, c.Ratio
		return c, true
	}
	s := summarize(pr)
	c.RatioMin, c.RatioMax = s.Min, s.Max
	return c, true
}

// clear says whether the per-round ratios were all on one side of 1: the
// difference showed in every round. (With one pair or none, it cannot
// tell, and says no.)
func (c comparison) clear() bool {
	return c.Pairs > 1 && (c.RatioMin > 1 || c.RatioMax < 1)
}

// coverage is the probability that the range of n independent rounds
// holds the median of the distribution they are drawn from: it misses
// only if all n fall on one side, 2 * 2^-n.
func coverage(n int) float64 {
	if n < 2 {
		return 0
	}
	return 1 - math.Pow(2, float64(1-n))
}
