package drift_test

import (
	"math"
	"slices"
	"testing"

	"github.com/camera-exporter/camera_exporter/drift"
)

// comparedDifference is CompareStill's Difference.
func comparedDifference(a, b []uint8) float64 {
	s, _ := drift.CompareStill(a, b)
	return s.Difference
}

func TestCompareStillDifference(t *testing.T) {
	sig := view(1)
	// One value in ten a level off: re-encoding, or noise the encoder
	// mostly smoothed away.
	reencoded := append([]uint8(nil), sig...)
	for i := 0; i < len(reencoded); i += 10 {
		reencoded[i] = uint8(min(int(reencoded[i])+1, 255))
		if reencoded[i] == sig[i] {
			reencoded[i]--
		}
	}
	// Every value a level off: sensor noise that survives the encoder.
	noisy := append([]uint8(nil), sig...)
	for i := range noisy {
		noisy[i] = uint8(min(int(noisy[i])+1, 255))
		if noisy[i] == sig[i] {
			noisy[i]--
		}
	}
	// A frozen sensor behind a live clock overlay: the top left 16x18
	// values, 4 of the 200 blocks, change by 60 levels.
	clock := append([]uint8(nil), sig...)
	for y := range 18 {
		for x := range 16 {
			clock[y*160+x] = uint8((int(clock[y*160+x]) + 60) % 256)
		}
	}
	for _, tc := range []struct {
		name  string
		a, b  []uint8
		want  float64 // -1: any
		still bool
	}{
		{"same picture", sig, append([]uint8(nil), sig...), 0, true},
		{"re-encoded", sig, reencoded, -1, true},
		{"one level up", flatSignature(10), flatSignature(11), 1.0 / 255, false},
		{"black and white", flatSignature(0), flatSignature(255), 1, false},
		{"live static view", sig, noisy, 1.0 / 255, false},
		{"other view", sig, view(2), -1, false},
		{"clock overlay", sig, clock, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := comparedDifference(tc.a, tc.b)
			if tc.want >= 0 && math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("Difference = %v levels, want %v", got*255, tc.want*255)
			}
			if still := got < drift.StillLimit; still != tc.still {
				t.Errorf("Difference = %v levels, still %v, want %v", got*255, still, tc.still)
			}
			if back := comparedDifference(tc.b, tc.a); back != got {
				t.Errorf("Difference not symmetric: %v and %v", got, back)
			}
		})
	}
	for _, b := range [][]uint8{nil, sig[:10]} {
		if got := comparedDifference(sig, b); !math.IsNaN(got) {
			t.Errorf("Difference with %d values = %v, want NaN", len(b), got)
		}
	}
}

func TestCompareStill(t *testing.T) {
	sig := view(1)
	// offset returns sig with the w x h values at column x and row y
	// moved by levels.
	offset := func(x, y, w, h, levels int) []uint8 {
		out := append([]uint8(nil), sig...)
		for r := y; r < y+h; r++ {
			for c := x; c < x+w; c++ {
				out[r*160+c] = uint8(min(max(int(out[r*160+c])+levels, 0), 255))
			}
		}
		return out
	}
	noisy := append([]uint8(nil), sig...)
	for i := range noisy {
		noisy[i] = uint8(min(int(noisy[i])+1+i%2, 255))
	}
	for _, tc := range []struct {
		name    string
		a, b    []uint8
		changed []int // blocks, row by row of 20
	}{
		{"same picture", sig, sig, nil},
		{"sensor noise everywhere", sig, noisy, nil},
		{"one level up", flatSignature(10), flatSignature(11), nil},
		{"clock in the top left corner", sig, offset(0, 0, 16, 18, 60), []int{0, 1, 20, 21}},
		// A 24x60 pixel figure of a 768x576 picture, 5x9 values, that
		// moved by 2 values across two blocks' border: its old place and
		// its new one.
		{"figure moved", offset(36, 45, 5, 9, 40), offset(38, 45, 5, 9, 40), []int{104, 105}},
		// 2x4 values, 12x30 pixels, a level of 20 over its block's noise.
		{"small figure appeared", sig, offset(90, 30, 2, 4, 20), []int{71}},
		{"a small figure faint against the picture's noise", noisy, offset(90, 30, 2, 4, 4), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ok := drift.CompareStill(tc.a, tc.b)
			if !ok {
				t.Fatal("not ok")
			}
			var changed []int
			for b, c := range s.Changed {
				if c {
					changed = append(changed, b)
				}
			}
			if !slices.Equal(changed, tc.changed) {
				t.Errorf("changed blocks %v, want %v", changed, tc.changed)
			}
			if over := s.LargestChange > 1; over != (len(changed) > 0) {
				t.Errorf("largest change %.2f of the threshold, with %d blocks changed", s.LargestChange, len(changed))
			}
		})
	}
	for _, b := range [][]uint8{nil, sig[:10]} {
		if s, ok := drift.CompareStill(sig, b); ok || !math.IsNaN(s.Difference) {
			t.Errorf("CompareStill with %d values = %v, %v, want NaN, false", len(b), s.Difference, ok)
		}
	}
}
