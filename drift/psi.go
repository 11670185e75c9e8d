package drift

import "math"

// pseudoCount smooths PSI's histograms, see PSI.
const pseudoCount = 0.5

// PSI returns the population stability index of cur against ref, two
// histograms over the same bins given as counts per bin:
//
//	PSI = Σ (c_i − r_i) · ln(c_i / r_i)
//
// where r_i and c_i are the proportions of bin i, after adding half a count
// to both sides' bins that either side uses (see below). It is 0 for
// identical histograms and grows as they part: below 0.1 is no significant
// change, 0.1 to 0.25 a moderate one, above 0.25 a significant one. It is
// symmetric, PSI(a, b) = PSI(b, a), being the sum of the two
// Kullback-Leibler divergences. It is NaN when either histogram is empty,
// and panics when their lengths differ.
//
// The log ratio of a bin one side lacks is infinite, so PSI needs
// smoothing. A fixed epsilon proportion (often 1e-4) makes the score hinge
// on it: a bin holding 5% of the reference that a 20-sample window happens
// to miss, as it does one time in three, adds 0.05·ln(0.05/1e-4) ≈ 0.31, a
// significant drift out of chance alone. Half a count (the Jeffreys prior)
// weighs a missed bin by what the sample size can tell instead: the same
// bin adds 0.02, while a bin of 20 window samples that the reference never
// saw still scores high. Bins empty on both sides carry no evidence and are
// left out, so that unused bins add no noise.
//
// With n samples drawn from the reference's own distribution over k bins,
// PSI is not 0 but about (k−1)/n, hence a minimum sample size.
func PSI(ref, cur []float64) float64 {
	if len(ref) != len(cur) {
		panic("drift: PSI of histograms with different bins")
	}
	var rn, cn float64
	k := 0
	for i := range ref {
		rn += ref[i]
		cn += cur[i]
		if ref[i] > 0 || cur[i] > 0 {
			k++
		}
	}
	if rn == 0 || cn == 0 {
		return math.NaN()
	}
	rn += pseudoCount * float64(k)
	cn += pseudoCount * float64(k)
	var psi float64
	for i := range ref {
		if ref[i] == 0 && cur[i] == 0 {
			continue
		}
		r := (ref[i] + pseudoCount) / rn
		c := (cur[i] + pseudoCount) / cn
		psi += (c - r) * math.Log(c/r)
	}
	return psi
}
