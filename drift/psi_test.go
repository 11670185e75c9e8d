package drift_test

import (
	"math"
	"testing"

	"github.com/camera-exporter/camera_exporter/drift"
)

func TestPSI(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ref, cur []float64
		want     float64
	}{
		{"identical", []float64{10, 20, 30}, []float64{10, 20, 30}, 0},
		// Half a count per bin: 50.5/101 = 0.5 against 90.5/101 and 10.5/101,
		// (0.896040−0.5)·ln(0.896040/0.5) + (0.103960−0.5)·ln(0.103960/0.5)
		// = 0.231040 + 0.622019.
		{"known", []float64{50, 50}, []float64{90, 10}, 0.853059},
		// Bins empty on both sides are left out.
		{"unused bins", []float64{0, 50, 0, 50, 0}, []float64{0, 90, 0, 10, 0}, 0.853059},
		// 25.5/102 = 0.25 against 40.5/102, 30.5/102, 20.5/102, 10.5/102:
		// 0.068033 + 0.008777 + 0.010699 + 0.130486, before rounding 0.217994.
		{"gradual", []float64{25, 25, 25, 25}, []float64{40, 30, 20, 10}, 0.217994},
		// A bin the reference lacks: 0.5/101 against 10.5/101,
		// (0.103960−0.004950)·ln(21) + (0.896040−0.995050)·ln(90.5/100.5).
		{"empty reference bin", []float64{0, 100}, []float64{10, 90}, 0.311815},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := drift.PSI(tc.ref, tc.cur)
			if math.Abs(got-tc.want) > 1e-6 {
				t.Errorf("PSI(%v, %v) = %.6f, want %.6f", tc.ref, tc.cur, got, tc.want)
			}
			// Jeffreys' divergence is symmetric, even between samples of
			// different sizes.
			if back := drift.PSI(tc.cur, tc.ref); math.Abs(back-got) > 1e-12 {
				t.Errorf("PSI(%v, %v) = %.6f, not symmetric to %.6f", tc.cur, tc.ref, back, got)
			}
		})
	}
}

func TestPSIEmpty(t *testing.T) {
	if got := drift.PSI([]float64{0, 0}, []float64{1, 2}); !math.IsNaN(got) {
		t.Errorf("PSI of an empty reference = %v, want NaN", got)
	}
	if got := drift.PSI([]float64{1, 2}, []float64{0, 0}); !math.IsNaN(got) {
		t.Errorf("PSI of an empty window = %v, want NaN", got)
	}
}

func TestPSILengthMismatch(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("PSI of histograms of different lengths did not panic")
		}
	}()
	drift.PSI([]float64{1, 2}, []float64{1, 2, 3})
}

// A window that misses a small reference bin by chance must not look like
// drift: the case the smoothing is chosen for.
func TestPSIMissedBin(t *testing.T) {
	ref := []float64{50, 300, 400, 200, 50}
	cur := []float64{0, 6, 8, 4, 2} // 20 samples, the first 5% bin missed
	if got := drift.PSI(ref, cur); got > 0.1 {
		t.Errorf("PSI with a missed 5%% bin = %.3f, want below 0.1", got)
	}
}

func TestBins(t *testing.T) {
	for _, tc := range []struct {
		feature string
		n       int
		first   float64
		last    float64
	}{
		{drift.FeatureBrightness, 10, 0.1, 1},
		{drift.FeatureContrast, 10, 0.05, 0.5},
		{drift.FeatureDarkPixels, 11, 0, 1},
		{drift.FeatureOverexposedPixels, 11, 0, 1},
		{drift.FeatureEdgeDensity, 11, 0, 1},
		{drift.FeatureSaturation, 10, 0.1, 1},
		{drift.FeatureSharpness, 13, 1e-6, 1},
		{drift.FeatureObjects, 10, 0, math.Inf(1)},
		{"objects_person", 10, 0, math.Inf(1)},
		{drift.FeatureConfidence, 10, 0.1, 1},
		{drift.FeatureEmptyOutput, 2, 0, 1},
	} {
		b := drift.Bins(tc.feature)
		if len(b) != tc.n || math.Abs(b[0]-tc.first) > 1e-12 || math.Abs(b[len(b)-1]-tc.last) > 1e-12 {
			t.Errorf("Bins(%q) = %v, want %d edges from %v to %v", tc.feature, b, tc.n, tc.first, tc.last)
		}
		for i := 1; i < len(b); i++ {
			if b[i] <= b[i-1] {
				t.Errorf("Bins(%q) = %v, not increasing", tc.feature, b)
			}
		}
	}
	for _, f := range []string{"", "objects_", "hue"} {
		if b := drift.Bins(f); b != nil {
			t.Errorf("Bins(%q) = %v, want nil", f, b)
		}
	}
	// Callers get a copy.
	drift.Bins(drift.FeatureBrightness)[0] = 42
	if b := drift.Bins(drift.FeatureBrightness); b[0] != 0.1 {
		t.Errorf("Bins shares its edges: %v", b)
	}
}
