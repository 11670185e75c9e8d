package drift_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/camera-exporter/camera_exporter/drift"
	"github.com/camera-exporter/camera_exporter/imagestats"
)

// view returns the signature of a made-up view: a gradient in some
// direction with blobs, the same for a seed.
func view(seed uint64) []uint8 {
	r := rand.New(rand.NewPCG(seed, 2))
	w, h := imagestats.SignatureWidth, imagestats.SignatureHeight
	type blob struct{ x, y, r, level float64 }
	blobs := make([]blob, 12)
	for i := range blobs {
		blobs[i] = blob{r.Float64() * float64(w), r.Float64() * float64(h), 5 + 15*r.Float64(), 80 * (r.Float64() - 0.5)}
	}
	angle := 2 * math.Pi * r.Float64()
	gx, gy := math.Cos(angle)/float64(w), math.Sin(angle)/float64(h)
	sig := make([]uint8, w*h)
	for y := range h {
		for x := range w {
			v := 110 + 100*(gx*float64(x-w/2)+gy*float64(y-h/2)) + 10*r.NormFloat64()
			for _, b := range blobs {
				if math.Hypot(float64(x)-b.x, float64(y)-b.y) < b.r {
					v += b.level
				}
			}
			sig[y*w+x] = uint8(min(max(math.Round(v), 0), 255))
		}
	}
	return sig
}

// reference is what a Builder makes of frames of a signature.
func reference(sig []uint8) []float32 {
	ref := make([]float32, len(sig))
	for i, v := range sig {
		ref[i] = float32(v) / 255
	}
	return ref
}

func mapSignature(sig []uint8, f func(float64) float64) []uint8 {
	out := make([]uint8, len(sig))
	for i, v := range sig {
		out[i] = uint8(min(max(math.Round(f(float64(v))), 0), 255))
	}
	return out
}

func TestSceneChange(t *testing.T) {
	sig := view(1)
	ref := reference(sig)
	for _, tc := range []struct {
		name     string
		ref      []float32
		sig      []uint8
		want     float64
		within   float64
		wantFlat bool
	}{
		{"same view", ref, sig, 0, 1e-9, false},
		{"dusk", ref, mapSignature(sig, func(v float64) float64 { return 0.4*v + 10 }), 0, 0.01, false},
		{"overexposed", ref, mapSignature(sig, func(v float64) float64 { return 1.3*v + 30 }), 0, 0.02, false},
		{"other view", ref, view(2), 0.5, 0.1, false},
		{"negative", ref, mapSignature(sig, func(v float64) float64 { return 255 - v }), 1, 1e-9, false},
		{"covered lens", ref, mapSignature(view(3), func(v float64) float64 { return 5 + v/255 }), 0, 0, true},
		{"flat reference", reference(flatSignature(128)), sig, 0, 0, true},
		{"no reference", nil, sig, 0, 0, true},
		{"no signature", ref, nil, 0, 0, true},
		{"size mismatch", ref, sig[:100], 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := drift.SceneChange(tc.ref, tc.sig)
			if ok == tc.wantFlat {
				t.Fatalf("SceneChange = %v, ok %v; want ok %v", got, ok, !tc.wantFlat)
			}
			if math.Abs(got-tc.want) > tc.within {
				t.Errorf("SceneChange = %.4f, want %.4f ± %v", got, tc.want, tc.within)
			}
		})
	}
	// Random scenes are unrelated: their correlation is 0 within
	// 1/sqrt(14400).
	a, b := make([]uint8, len(sig)), make([]uint8, len(sig))
	r := rand.New(rand.NewPCG(9, 9))
	for i := range a {
		a[i], b[i] = uint8(r.IntN(256)), uint8(r.IntN(256))
	}
	if got, ok := drift.SceneChange(reference(a), b); !ok || math.Abs(got-0.5) > 0.03 {
		t.Errorf("SceneChange of random scenes = %.4f, %v; want 0.5", got, ok)
	}
}

// BenchmarkSignatures measures what a frame's signature costs a scrape:
// comparing it with the reference and with the camera's latest frames.
func BenchmarkSignatures(b *testing.B) {
	ref, prev, sig := reference(view(1)), view(1), view(2)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := drift.SceneChange(ref, sig); !ok {
			b.Fatal("not ok")
		}
		for range 8 { // the frozen window
			drift.CompareStill(prev, sig)
		}
	}
}
