package drift

import (
	"math"
	"math/cmplx"
	"math/rand/v2"
	"testing"
)

// TestFFT2 compares the half-spectrum transforms with a direct DFT, and
// the inverse with the input.
func TestFFT2(t *testing.T) {
	const w, h = 16, 8
	r := rand.New(rand.NewPCG(1, 1))
	in := make([]float64, w*h)
	data := make([]complex64, w*h)
	for i := range in {
		if i/w >= 2 && i/w < 7 { // rows 2 to 6, the rest zero
			in[i] = r.NormFloat64()
		}
		data[i] = complex(float32(in[i]), 0)
	}
	f := newFFT2(w, h)
	row, col := make([]complex64, w), make([]complex64, h)
	f.forward(data, row, col, 2, 7)
	for ky := range h {
		for kx := 0; kx <= w/2; kx++ {
			var want complex128
			for y := range h {
				for x := range w {
					want += complex(in[y*w+x], 0) * cmplx.Exp(complex(0, -2*math.Pi*(float64(kx*x)/w+float64(ky*y)/h)))
				}
			}
			if got := complex128(data[ky*w+kx]); cmplx.Abs(got-want) > 1e-4 {
				t.Fatalf("F(%d,%d) = %v, want %v", kx, ky, got, want)
			}
		}
	}
	f.inverse(data, row, col)
	for i, v := range in {
		if got := float64(real(data[i])) / (w * h); math.Abs(got-v) > 1e-5 || imag(data[i]) != 0 {
			t.Fatalf("inverse[%d] = %v, want %v", i, data[i], v)
		}
	}
}

func TestFastLog(t *testing.T) {
	for x := float32(1); x < 1e7; x *= 1.37 {
		if got, want := fastLog(x), math.Log(float64(x)); math.Abs(float64(got)-want) > 2e-4 {
			t.Fatalf("fastLog(%v) = %v, want %v", x, got, want)
		}
	}
}
