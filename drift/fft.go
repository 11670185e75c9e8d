package drift

import (
	"math"
	"math/bits"
)

// fft is a radix-2 complex fast Fourier transform of one power-of-two
// size, in complex64: the registration's pictures are 8-bit levels on
// grids of at most 128, so single precision leaves its error (about 1e-6
// of the peak) far below the signature's rounding. Written here rather
// than taken from a module so that drift keeps no dependency for it.
type fft struct {
	n   int
	rev []int32 // bit-reversed index of each index
	// The twiddles exp(∓2πik/size) for k < size/2, of each stage from
	// size 8 on, one after the other: read in order, without strides.
	tw, twi []complex64
}

func newFFT(n int) *fft {
	if n < 4 || n&(n-1) != 0 {
		panic("drift: FFT size not a power of two")
	}
	f := &fft{n: n, rev: make([]int32, n)}
	shift := 64 - bits.Len(uint(n-1))
	for i := range n {
		f.rev[i] = int32(bits.Reverse64(uint64(i)) >> shift)
	}
	for size := 8; size <= n; size <<= 1 {
		for k := range size / 2 {
			s, c := math.Sincos(-2 * math.Pi * float64(k) / float64(size))
			f.tw = append(f.tw, complex(float32(c), float32(s)))
			f.twi = append(f.twi, complex(float32(c), -float32(s)))
		}
	}
	return f
}

// transform replaces x (of length n) with its discrete Fourier transform,
// or with n times its inverse when inverse is set: the correlations only
// look for a peak, so no normalization is done.
func (f *fft) transform(x []complex64, inverse bool) {
	n := f.n
	x = x[:n]
	for i, j := range f.rev {
		if int(j) > i {
			x[i], x[j] = x[j], x[i]
		}
	}
	// The first two stages, of butterflies of 2 and 4, need no
	// multiplication: their twiddles are 1 and ∓i.
	for i := 0; i+3 < n; i += 4 {
		q := x[i : i+4 : i+4]
		a, b, c, d := q[0]+q[1], q[0]-q[1], q[2]+q[3], q[2]-q[3]
		// d times −i, or i for the inverse.
		if inverse {
			d = complex(-imag(d), real(d))
		} else {
			d = complex(imag(d), -real(d))
		}
		q[0], q[2] = a+c, a-c
		q[1], q[3] = b+d, b-d
	}
	tw := f.tw
	if inverse {
		tw = f.twi
	}
	for half := 4; half < n; half <<= 1 {
		w := tw[:half]
		tw = tw[half:]
		for start := 0; start < n; start += 2 * half {
			lo := x[start : start+half]
			hi := x[start+half : start+2*half]
			hi = hi[:len(lo)]
			w := w[:len(lo)]
			for j, a := range lo {
				b, t := hi[j], w[j]
				// The product spelled out: Go's complex64 multiplication
				// checks for infinities and NaNs, twice as slow here.
				br, bi := real(b)*real(t)-imag(b)*imag(t), real(b)*imag(t)+imag(b)*real(t)
				lo[j] = complex(real(a)+br, imag(a)+bi)
				hi[j] = complex(real(a)-br, imag(a)-bi)
			}
		}
	}
}

// fft2 is a two-dimensional transform of w x h real values stored by
// rows in complex64 (their real parts). A real picture's spectrum is
// symmetric, F(−k) = conj F(k), so only the columns 0 to w/2 are
// transformed and kept, and the rows are transformed two at a time as the
// real and imaginary parts of one complex row: half the work of a complex
// transform.
type fft2 struct {
	w, h   int
	rx, ry *fft
}

func newFFT2(w, h int) *fft2 { return &fft2{w: w, h: h, rx: newFFT(w), ry: newFFT(h)} }

// forward replaces data, real values, with their transform in columns 0
// to w/2; the other columns are left undefined. Rows outside rows0 to
// rows1 (exclusive) must be zero, and are not transformed: the pictures
// only fill part of the grid. row and col are scratch of w and h values.
func (f *fft2) forward(data, row, col []complex64, rows0, rows1 int) {
	w := f.w
	row = row[:w]
	rows0 &^= 1
	for y := rows0; y < rows1; y += 2 {
		a, b := data[y*w:(y+1)*w], data[(y+1)*w:(y+2)*w]
		for x := range w {
			row[x] = complex(real(a[x]), real(b[x]))
		}
		f.rx.transform(row, false)
		// Z = A + iB with A and B symmetric: A(k) = (Z(k) + conj Z(−k))/2,
		// B(k) = (Z(k) − conj Z(−k))/2i.
		for k := 0; k <= w/2; k++ {
			z, zc := row[k], row[(w-k)&(w-1)]
			zc = complex(real(zc), -imag(zc))
			s, d := z+zc, z-zc
			a[k] = complex(real(s)/2, imag(s)/2)
			b[k] = complex(imag(d)/2, -real(d)/2)
		}
	}
	f.columns(data, col, false)
}

// inverse replaces data, a symmetric spectrum given in columns 0 to w/2,
// with w·h times its inverse transform, real, in the real parts.
func (f *fft2) inverse(data, row, col []complex64) {
	w, h := f.w, f.h
	row = row[:w]
	f.columns(data, col, true)
	for y := 0; y < h; y += 2 {
		a, b := data[y*w:(y+1)*w], data[(y+1)*w:(y+2)*w]
		// Z = A + iB, each row's other half conjugate to the first.
		for k := 0; k <= w/2; k++ {
			row[k] = complex(real(a[k])-imag(b[k]), imag(a[k])+real(b[k]))
		}
		for k := w/2 + 1; k < w; k++ {
			p, q := a[w-k], b[w-k]
			row[k] = complex(real(p)+imag(q), real(q)-imag(p))
		}
		f.rx.transform(row, true)
		for x := range w {
			a[x], b[x] = complex(real(row[x]), 0), complex(imag(row[x]), 0)
		}
	}
}

// columns transforms columns 0 to w/2 of data.
func (f *fft2) columns(data, col []complex64, inverse bool) {
	w, h := f.w, f.h
	col = col[:h]
	for x := 0; x <= w/2; x++ {
		for y := range h {
			col[y] = data[y*w+x]
		}
		f.ry.transform(col, inverse)
		for y := range h {
			data[y*w+x] = col[y]
		}
	}
}
