package collector

import (
	"math/rand/v2"
	"testing"

	"github.com/camera-exporter/camera_exporter/imagestats"
)

// jitter returns sig with one value in every step moved a level, as
// re-encoding (step 10: 0.1 level) or sensor noise surviving the encoder
// (step 1: 1 level) move a still picture's signature.
func jitter(rng *rand.Rand, sig []uint8, step int) []uint8 {
	out := append([]uint8(nil), sig...)
	for i := rng.IntN(step); i < len(out); i += step {
		if rng.IntN(2) == 0 && out[i] < 255 || out[i] == 0 {
			out[i]++
		} else {
			out[i]--
		}
	}
	return out
}

// withClock returns sig with a clock drawn in its top left corner: 16x9
// values, two of the 200 blocks, changed by 60 levels.
func withClock(sig []uint8, tick int) []uint8 {
	out := append([]uint8(nil), sig...)
	for y := range 9 {
		for x := range 16 {
			out[y*imagestats.SignatureWidth+x] = uint8((int(sig[y*imagestats.SignatureWidth+x]) + 60*tick) % 256)
		}
	}
	return out
}

func TestFrozenDetector(t *testing.T) {
	still := signature(100)
	type picture struct {
		seq, coded uint64
		sig        []uint8
		inter      bool // not a key frame's picture
	}
	// pictures returns n distinct pictures, the i-th's signature by sig,
	// of key frames unless inter.
	pictures := func(n int, sig func(i int) []uint8, inter ...bool) []picture {
		out := make([]picture, n)
		for i := range out {
			out[i] = picture{seq: uint64(i + 1), sig: sig(i), inter: len(inter) > 0 && inter[0]}
		}
		return out
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name     string
		pictures []picture
		want     string // camera_frame_frozen after each picture, '-' for none
	}{
		{"re-encoded still picture", pictures(8, func(int) []uint8 { return jitter(rng, still, 10) }), "00111111"},
		{"still scene with sensor noise", pictures(8, func(int) []uint8 { return jitter(rng, still, 1) }), "00000000"},
		{
			// Two qualities a level apart on average: the previous picture
			// differs, the one before it is the same.
			"rate control alternating qualities",
			pictures(8, func(i int) []uint8 { return jitter(rng, signature(100+i%2), 10) }),
			"00011111",
		},
		{"frozen picture under a clock", pictures(8, func(i int) []uint8 { return withClock(jitter(rng, still, 10), i) }), "00111111"},
		{"moving scene", pictures(8, func(i int) []uint8 { return signature(100 + 3*i) }), "00000000"},
		{
			"the same picture analyzed again",
			[]picture{{1, 0, still, false}, {1, 0, still, false}, {1, 0, still, false}, {1, 0, still, false}},
			"0000",
		},
		{
			// A camera resending one coded picture repeats it from the
			// first resend, whatever the signatures say.
			"the same coded picture sent again",
			[]picture{{1, 7, nil, false}, {2, 7, nil, false}, {3, 7, nil, false}, {4, 8, nil, false}},
			"0110",
		},
		{
			// decode: all on a live still scene: each key frame brings the
			// sensor's noise, the P-frames after it copy its picture.
			"a live still scene's inter-coded pictures",
			func() []picture {
				var out []picture
				for i := range 12 {
					if i%4 == 0 {
						out = append(out, picture{seq: uint64(i + 1), sig: jitter(rng, still, 1)})
					} else {
						out = append(out, picture{seq: uint64(i + 1), sig: out[len(out)-1].sig, inter: true})
					}
				}
				return out
			}(),
			"000000000000",
		},
		{
			"re-encoded still picture without key frames (intra refresh)",
			pictures(8, func(int) []uint8 { return jitter(rng, still, 10) }, true),
			"00111111",
		},
		{"no signatures", pictures(4, func(int) []uint8 { return nil }), "0000"},
		{"the picture frozen, then live again", append(pictures(4, func(int) []uint8 { return still }), picture{5, 0, signature(140), false}), "00110"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f frozenDetector
			if _, ok := f.frozen(); ok {
				t.Error("frozen before any picture")
			}
			got := ""
			for _, p := range tc.pictures {
				f.observe(p.seq, p.coded, !p.inter, p.sig)
				frozen, ok := f.frozen()
				switch {
				case !ok:
					got += "-"
				case frozen:
					got += "1"
				default:
					got += "0"
				}
			}
			if got != tc.want {
				diff, _ := f.difference()
				t.Errorf("frozen after each picture %s, want %s (last difference %.3f level)", got, tc.want, diff*255)
			}
		})
	}
}
