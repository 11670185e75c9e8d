package camera

import (
	"slices"
	"testing"
)

// span returns n sequence numbers counting up from first, wrapping at 65535.
func span(first uint16, n int) []uint16 {
	seqs := make([]uint16, n)
	for i := range seqs {
		seqs[i] = first + uint16(i)
	}
	return seqs
}

// twice sends every sequence number twice, as a camera that duplicates
// its packets does.
func twice(seqs []uint16) []uint16 {
	var out []uint16
	for _, seq := range seqs {
		out = append(out, seq, seq)
	}
	return out
}

// swapPairs reorders neighbours: 1 0 3 2 ...
func swapPairs(seqs []uint16) []uint16 {
	out := slices.Clone(seqs)
	for i := 0; i+1 < len(out); i += 2 {
		out[i], out[i+1] = out[i+1], out[i]
	}
	return out
}

func TestSeqTracker(t *testing.T) {
	for _, tc := range []struct {
		name string
		seqs []uint16
		lost uint64
		dups int
	}{
		{"in order", span(100, 1000), 0, 0},
		// The first packet's duplicate comes while the source is on
		// probation, before counting starts.
		{"duplicates", twice(span(100, 1000)), 0, 999},
		{"reordered pairs", slices.Concat(span(0, 10), swapPairs(span(10, 1000))), 0, 0},
		{"late by 99", slices.Concat(span(0, 200), span(201, 99), []uint16{200}, span(300, 200)), 0, 0},
		{"repeated late", slices.Concat(span(0, 200), []uint16{150, 150}, span(200, 200)), 0, 2},
		{"wrap-around", span(65000, 2000), 0, 0},
		{"gap of 3", slices.Concat(span(0, 100), span(103, 400)), 3, 0},
		{"gap of 3 at the wrap", slices.Concat(span(65500, 35), span(2, 400)), 3, 0},
		{"gap filled late", slices.Concat(span(0, 100), span(101, 50), []uint16{100}, span(151, 300)), 0, 0},
		{"gap wider than the window", slices.Concat(span(0, 100), span(1100, 300)), 1000, 0},
		{"duplicated with a gap", twice(slices.Concat(span(0, 100), span(103, 400))), 3, 499},
		// 100 counts as lost once 100+seqWindow arrived, not before.
		{"gap too recent", slices.Concat(span(0, 100), span(103, seqWindow-3)), 0, 0},
		{"gap just old enough", slices.Concat(span(0, 100), span(103, seqWindow-2)), 1, 0},
		{"restart jump", slices.Concat(span(0, 500), span(30000, 500)), 0, 0},
		{"restart jump backwards", slices.Concat(span(40000, 500), span(1000, 500)), 0, 0},
		{"one stray packet", slices.Concat(span(0, 500), []uint16{30000}, span(500, 500)), 0, 0},
		{"gap after a restart", slices.Concat(span(0, 500), span(30000, 100), span(30105, 200)), 5, 0},
		{"gap on probation", slices.Concat([]uint16{10, 20}, span(21, 300)), 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tr seqTracker
			var lost uint64
			dups := 0
			for _, seq := range tc.seqs {
				l, dup := tr.push(seq)
				lost += l
				if dup {
					dups++
				}
			}
			if lost != tc.lost || dups != tc.dups {
				t.Errorf("lost %d, %d duplicates; want %d, %d", lost, dups, tc.lost, tc.dups)
			}
		})
	}
}
