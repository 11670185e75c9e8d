package analysis

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/camera-exporter/camera_exporter/config"
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

// withFigure returns sig with a figure of w x h values, 80 levels brighter,
// at column x and row y: a person seen from afar, 24x60 pixels of a
// 768x576 picture being 5x9 values.
func withFigure(sig []uint8, x, y, w, h int) []uint8 {
	return brighten(sig, x, y, w, h, 80)
}

// brighten returns sig with the w x h values at column x and row y the
// given levels brighter.
func brighten(sig []uint8, x, y, w, h, levels int) []uint8 {
	out := append([]uint8(nil), sig...)
	for r := y; r < y+h; r++ {
		for c := x; c < x+w; c++ {
			out[r*imagestats.SignatureWidth+c] = uint8(min(int(sig[r*imagestats.SignatureWidth+c])+levels, 255))
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
	// of key frames unless inter; they come a second apart.
	pictures := func(n int, sig func(i int) []uint8, inter ...bool) []picture {
		out := make([]picture, n)
		for i := range out {
			out[i] = picture{seq: uint64(i + 1), sig: sig(i), inter: len(inter) > 0 && inter[0]}
		}
		return out
	}
	// A clock's blocks are learned as overlay overlayFloor after the
	// second picture, which first changes them, pictures a second apart;
	// the picture is frozen from the next.
	learned := int(overlayFloor/time.Second) + 1
	clockFrozen := strings.Repeat("0", learned+1) + "1111"
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name     string
		pictures []picture
		want     string // camera_frame_frozen after each picture, '-' for none
	}{
		{"re-encoded still picture", pictures(8, func(int) []uint8 { return jitter(rng, still, 10) }), "00111111"},
		{
			// One picture of another quality, a block of it 5 levels off:
			// it reads live, and so does the next, which it is the latest
			// and the most similar of; from the one after, frozen again,
			// though it stays among the recent pictures.
			"re-encoded still picture with one odd block",
			pictures(16, func(i int) []uint8 {
				if i == 4 {
					return brighten(jitter(rng, still, 10), 80, 45, 8, 9, 5)
				}
				return jitter(rng, still, 10)
			}),
			"0011000" + strings.Repeat("1", 9),
		},
		{"still scene with sensor noise", pictures(8, func(int) []uint8 { return jitter(rng, still, 1) }), "00000000"},
		{
			// Two qualities a level apart on average: the previous picture
			// differs, the one before it is the same.
			"rate control alternating qualities",
			pictures(8, func(i int) []uint8 { return jitter(rng, signature(100+i%2), 10) }),
			"00011111",
		},
		{"frozen picture under a clock", pictures(learned+5, func(i int) []uint8 { return withClock(jitter(rng, still, 10), i) }), clockFrozen},
		{
			// The clock misses a tick where the recent pictures all show
			// one time: its blocks stay learned.
			"frozen picture under a clock that misses ticks",
			pictures(learned+5, func(i int) []uint8 { return withClock(jitter(rng, still, 10), i-i%10/9) }),
			clockFrozen,
		},
		{
			// A 5x9 value figure crossing the picture, 2 values a
			// picture: the blocks it enters are new each few pictures.
			"small figure walking",
			pictures(70, func(i int) []uint8 { return withFigure(jitter(rng, still, 10), 2*i, 40, 5, 9) }),
			strings.Repeat("0", 70),
		},
		{
			// Half a value a picture: neighbouring pictures are the same.
			"small figure walking slowly",
			pictures(70, func(i int) []uint8 { return withFigure(jitter(rng, still, 10), 10+i/2, 40, 5, 9) }),
			strings.Repeat("0", 70),
		},
		{
			// A 2x4 value figure (12x30 pixels at 768x576) going down.
			"smaller figure walking down slowly",
			pictures(70, func(i int) []uint8 { return withFigure(jitter(rng, still, 10), 60, i, 2, 4) }),
			strings.Repeat("0", 70),
		},
		{
			// A worker at a bench mid-picture, moving within two blocks
			// for a minute: no overlay, though it changes them in place.
			"worker fidgeting in place",
			pictures(60, func(i int) []uint8 { return withFigure(jitter(rng, still, 10), 80+3*(i%3), 40, 5, 9) }),
			strings.Repeat("0", 60),
		},
		{
			// The same, at the top edge where overlays are learned.
			"something fidgeting in place in the top row",
			pictures(60, func(i int) []uint8 { return withFigure(jitter(rng, still, 10), 80+3*(i%3), 0, 5, 9) }),
			strings.Repeat("0", learned+1) + strings.Repeat("1", 60-learned-1),
		},
		{
			"small figure walking under a clock",
			pictures(70, func(i int) []uint8 { return withClock(withFigure(jitter(rng, still, 10), 2*i, 40, 5, 9), i) }),
			strings.Repeat("0", 70),
		},
		{
			// No overlay, until all but one of the recent pictures show
			// the figure.
			"figure arriving and staying",
			pictures(24, func(i int) []uint8 {
				if i < 3 {
					return jitter(rng, still, 10)
				}
				return withFigure(jitter(rng, still, 10), 50, 40, 5, 9)
			}),
			"001" + strings.Repeat("0", frozenWindow) + strings.Repeat("1", 24-frozenWindow-3),
		},
		{
			// Leaves in the wind over 25 blocks, in place, changing them
			// by 3 levels: more blocks than an overlay covers, though the
			// tenth left out of the difference leaves too few to count.
			"leaves moving in place",
			pictures(40, func(i int) []uint8 { return brighten(jitter(rng, still, 10), 0, 0, 40, 45, 3*(i%2)) }),
			strings.Repeat("0", 40),
		},
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
			now := time.Now()
			for i, p := range tc.pictures {
				f.observe(now.Add(time.Duration(i)*time.Second), p.seq, p.coded, !p.inter, p.sig)
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

// TestFrozenOverlayTicks follows a frozen picture under a clock whose
// digits change in two blocks side by side: its seconds, and its tens of
// seconds or its minutes, which change too seldom to be learned alone.
func TestFrozenOverlayTicks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		every time.Duration // between pictures
		slow  time.Duration // between changes of the second block
	}{
		// --collector.image.min-interval=0s and a scrape every 250 ms.
		{"four pictures a second, tens of seconds", time.Second / 4, 10 * time.Second},
		// The default --collector.image.min-interval.
		{"a picture every 5 s, minutes", 5 * time.Second, time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 4))
			still := signature(100)
			var f frozenDetector
			start := time.Now()
			learnedBy := int((overlayFloor+4*time.Second)/tc.every) + 2
			var live []int
			for i := range learnedBy + 400 {
				at := time.Duration(i) * tc.every
				sig := brighten(jitter(rng, still, 10), 0, 0, 8, 9, 30*int(at/time.Second%4))
				sig = brighten(sig, 8, 0, 8, 9, 30*int(at/tc.slow%4))
				f.observe(start.Add(at), uint64(i+1), 0, true, sig)
				if frozen, _ := f.frozen(); !frozen {
					live = append(live, i)
				}
			}
			if last := live[len(live)-1]; last >= learnedBy {
				t.Errorf("picture %d read live, want frozen from picture %d on (live: %v)", last, learnedBy, live)
			}
			if learning := int(overlayFloor / tc.every); len(live) < learning {
				t.Errorf("read live in pictures %v only, want the first %d at least, until the clock's blocks are learned", live, learning)
			}
		})
	}
}

// TestFrozenConfiguredOverlay follows a frozen picture under a clock drawn
// mid-picture: live unless the camera's frozen_overlay names its region.
func TestFrozenConfiguredOverlay(t *testing.T) {
	for _, tc := range []struct {
		name    string
		regions []config.Region
		frozen  bool
	}{
		{"no region", nil, false},
		{"a region elsewhere", []config.Region{{Left: 0, Top: 0.3, Right: 0.2, Bottom: 0.4}}, false},
		{"the clock's region", []config.Region{{Left: 0.4, Top: 0.4, Right: 0.6, Bottom: 0.5}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(11, 12))
			still := signature(100)
			var f frozenDetector
			f.overlay.configure(tc.regions)
			start := time.Now()
			// Seconds and tens of seconds in the blocks at 40% to 50%
			// of the width, 40% to 50% of the height.
			for i := range 60 {
				sig := brighten(jitter(rng, still, 10), 64, 36, 8, 9, 20*(i%10))
				sig = brighten(sig, 72, 36, 8, 9, 20*(i/10%6))
				f.observe(start.Add(time.Duration(i)*time.Second), uint64(i+1), 0, true, sig)
			}
			if frozen, _ := f.frozen(); frozen != tc.frozen {
				t.Errorf("frozen %v after a minute, want %v", frozen, tc.frozen)
			}
		})
	}
}

// withFigureAt returns sig with a figure of w x h values, 80 levels
// brighter, its left edge at column x, a fraction of a value blending
// into the column it half covers as a camera's pixels do.
func withFigureAt(sig []uint8, x float64, y, w, h int) []uint8 {
	out := append([]uint8(nil), sig...)
	for c := int(x); c <= int(x)+w && c < imagestats.SignatureWidth; c++ {
		cover := min(float64(c+1), x+float64(w)) - max(float64(c), x)
		if cover <= 0 {
			continue
		}
		for r := y; r < y+h; r++ {
			i := r*imagestats.SignatureWidth + c
			out[i] = uint8(min(float64(sig[i])+80*cover, 255))
		}
	}
	return out
}

// TestFrozenSlowWalker follows a 24x60 pixel figure walking slowly across
// a 768x576 picture, mid-picture and along its top edge, under a clock
// that the camera learns: whatever the pace and however far apart the
// pictures, it is never taken for the clock's overlay.
func TestFrozenSlowWalker(t *testing.T) {
	const valuesPerPixel = float64(imagestats.SignatureWidth) / 768
	for _, speed := range []float64{0.5, 1, 2} { // pixels a second
		for _, every := range []time.Duration{time.Second, 5 * time.Second, 15 * time.Second} {
			t.Run(fmt.Sprintf("%gpx/s every %s", speed, every), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(7, 8))
				still := signature(100)
				var f frozenDetector
				start := time.Now()
				// Across 120 values at most, for 300 pictures at most.
				n := min(300, int(120/(speed*valuesPerPixel*every.Seconds())))
				var frozen []int
				for i := range n {
					at := time.Duration(i) * every
					x := 20 + speed*valuesPerPixel*at.Seconds()
					sig := withClock(jitter(rng, still, 10), int(at/time.Second))
					sig = withFigureAt(sig, x, 40, 5, 9)
					f.observe(start.Add(at), uint64(i+1), 0, true, sig)
					if fr, _ := f.frozen(); fr {
						frozen = append(frozen, i)
					}
				}
				if len(frozen) > 0 {
					t.Errorf("read frozen in %d of %d pictures: %v", len(frozen), n, frozen)
				}
			})
		}
	}
}

// TestFrozenOverlayIntervals follows a frozen picture under a clock
// (HH:MM:SS, its digits in four blocks of the top row) and a REC icon that
// blinks out of step with the pictures (in the bottom row), at the
// intervals scrapes analyze pictures at: its seconds alias at 30 and 60
// s. Once the overlay is learned, the picture reads frozen.
func TestFrozenOverlayIntervals(t *testing.T) {
	for _, every := range []time.Duration{time.Second, 15 * time.Second, 30 * time.Second, 60 * time.Second} {
		t.Run(every.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(9, 10))
			still := signature(100)
			var f frozenDetector
			start := time.Now()
			const n, established = 400, 40
			var live []int
			for i := range n {
				at := time.Duration(i) * every
				secs := int(at / time.Second)
				sig := jitter(rng, still, 10)
				for col, digit := range []int{secs / 600 % 6, secs / 60 % 10, secs % 60 / 10, secs % 10} {
					sig = brighten(sig, 8*(16+col), 0, 8, 9, 20*digit)
				}
				// On for 0.7 s of every 1.7 s.
				if at%(1700*time.Millisecond) < 700*time.Millisecond {
					sig = brighten(sig, 8, 81, 8, 9, 60)
				}
				f.observe(start.Add(at), uint64(i+1), 0, true, sig)
				if frozen, _ := f.frozen(); !frozen && i >= established {
					live = append(live, i)
				}
			}
			if share := float64(n-established-len(live)) / float64(n-established); share < 0.95 {
				t.Errorf("frozen in %.0f%% of pictures %d to %d, want 95%% at least; live in %v", 100*share, established, n, live)
			}
		})
	}
}

// BenchmarkFrozenObserve measures what a distinct picture costs the frozen
// check: the comparisons with the camera's 8 latest pictures and the
// overlay's learning.
func BenchmarkFrozenObserve(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	sigs := make([][]uint8, 16)
	for i := range sigs {
		sigs[i] = withFigure(jitter(rng, signature(100), 10), 4*i, 40, 5, 9)
	}
	var f frozenDetector
	now := time.Now()
	b.ReportAllocs()
	var seq uint64
	for b.Loop() {
		seq++
		f.observe(now.Add(time.Duration(seq)*time.Second), seq, 0, true, sigs[seq%16])
	}
}
