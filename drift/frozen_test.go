package drift_test

import (
	"math"
	"testing"

	"github.com/camera-exporter/camera_exporter/drift"
)

func TestStillDifference(t *testing.T) {
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
			got := drift.StillDifference(tc.a, tc.b)
			if tc.want >= 0 && math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("StillDifference = %v levels, want %v", got*255, tc.want*255)
			}
			if still := got < drift.StillLimit; still != tc.still {
				t.Errorf("StillDifference = %v levels, still %v, want %v", got*255, still, tc.still)
			}
			if back := drift.StillDifference(tc.b, tc.a); back != got {
				t.Errorf("StillDifference not symmetric: %v and %v", got, back)
			}
		})
	}
	for _, b := range [][]uint8{nil, sig[:10]} {
		if got := drift.StillDifference(sig, b); !math.IsNaN(got) {
			t.Errorf("StillDifference with %d values = %v, want NaN", len(b), got)
		}
	}
}
