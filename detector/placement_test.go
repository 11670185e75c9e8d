package detector

import (
	"math"
	"testing"
)

func TestPlace(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		mode                 Resize
		srcW, srcH, inW, inH int
		want                 Placement
	}{
		{"landscape letterbox", ResizeLetterbox, 1920, 1080, 640, 640, Placement{640, 360, 0, 140, 640, 640}},
		{"small letterbox", ResizeLetterbox, 640, 424, 320, 320, Placement{320, 212, 0, 54, 320, 320}},
		{"portrait letterbox", ResizeLetterbox, 1080, 1920, 640, 640, Placement{360, 640, 140, 0, 640, 640}},
		{"letterbox into wide input", ResizeLetterbox, 640, 640, 640, 384, Placement{384, 384, 128, 0, 640, 384}},
		{"letterbox upscale", ResizeLetterbox, 320, 240, 640, 640, Placement{640, 480, 0, 80, 640, 640}},
		{"letterbox sliver", ResizeLetterbox, 10000, 1, 640, 640, Placement{640, 1, 0, 319, 640, 640}},
		{"letterbox empty source", ResizeLetterbox, 0, 0, 640, 640, Placement{640, 640, 0, 0, 640, 640}},
		{"stretch", ResizeStretch, 1920, 1080, 416, 416, Placement{416, 416, 0, 0, 416, 416}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Place(tc.mode, tc.srcW, tc.srcH, tc.inW, tc.inH); got != tc.want {
				t.Errorf("Place(%s, %d, %d, %d, %d) = %+v, want %+v", tc.mode, tc.srcW, tc.srcH, tc.inW, tc.inH, got, tc.want)
			}
		})
	}
}

func TestToSource(t *testing.T) {
	letterbox := Place(ResizeLetterbox, 1280, 720, 640, 640) // 640x360 at (0, 140)
	stretch := Place(ResizeStretch, 640, 424, 320, 320)
	for _, tc := range []struct {
		name       string
		p          Placement
		in         Box
		srcW, srcH int
		want       Box
	}{
		{"letterbox", letterbox, Box{288, 288, 64, 64}, 1280, 720, Box{576, 296, 128, 128}},
		{"letterbox clipped by padding", letterbox, Box{-10, 100, 60, 100}, 1280, 720, Box{0, 0, 100, 120}},
		{"letterbox in padding", letterbox, Box{100, 600, 50, 30}, 1280, 720, Box{200, 720, 100, 0}},
		{"stretch", stretch, Box{120, 80, 80, 160}, 640, 424, Box{240, 106, 160, 212}},
		{"stretch clipped right", stretch, Box{272, 128, 64, 64}, 640, 424, Box{544, 169.6, 96, 84.8}},
		{"outside left", stretch, Box{-50, 10, 20, 20}, 640, 424, Box{0, 13.25, 0, 26.5}},
		{"empty placement", Placement{}, Box{1, 1, 1, 1}, 640, 424, Box{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.ToSource(tc.in, tc.srcW, tc.srcH); !boxNear(got, tc.want, 1e-3) {
				t.Errorf("%+v.ToSource(%+v) = %+v, want %+v", tc.p, tc.in, got, tc.want)
			}
		})
	}
}

// TestToSourceRoundTrip maps source boxes into the input as a detector would
// see them and back.
func TestToSourceRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		mode                 Resize
		srcW, srcH, inW, inH int
	}{
		{ResizeLetterbox, 1920, 1080, 640, 640},
		{ResizeLetterbox, 1080, 1920, 640, 640},
		{ResizeLetterbox, 641, 359, 416, 416},
		{ResizeStretch, 1920, 1080, 416, 416},
		{ResizeStretch, 640, 424, 300, 300},
	} {
		p := Place(tc.mode, tc.srcW, tc.srcH, tc.inW, tc.inH)
		sx := float64(p.Width) / float64(tc.srcW)
		sy := float64(p.Height) / float64(tc.srcH)
		for _, src := range []Box{
			{0, 0, float32(tc.srcW), float32(tc.srcH)},
			{13, 17, 101, 57},
			{float32(tc.srcW) / 3, float32(tc.srcH) / 2, 33.3, 77.7},
		} {
			in := Box{
				X:      float32(float64(src.X)*sx) + float32(p.Left),
				Y:      float32(float64(src.Y)*sy) + float32(p.Top),
				Width:  float32(float64(src.Width) * sx),
				Height: float32(float64(src.Height) * sy),
			}
			if got := p.ToSource(in, tc.srcW, tc.srcH); !boxNear(got, src, 0.5) {
				t.Errorf("%+v: %+v -> %+v -> %+v", p, src, in, got)
			}
		}
	}
}

func boxNear(a, b Box, tol float64) bool {
	return near(a.X, b.X, tol) && near(a.Y, b.Y, tol) && near(a.Width, b.Width, tol) && near(a.Height, b.Height, tol)
}

func near(a, b float32, tol float64) bool {
	return math.Abs(float64(a)-float64(b)) <= tol
}

func TestDefaultPreprocess(t *testing.T) {
	for _, tc := range []struct {
		l    Layout
		want Preprocess
	}{
		{LayoutDarknet, Preprocess{Resize: ResizeStretch, Scale: 1.0 / 255, SwapRB: true, Pad: 114}},
		{LayoutYOLOv5, Preprocess{Resize: ResizeLetterbox, Scale: 1.0 / 255, SwapRB: true, Pad: 114}},
		{LayoutYOLOv8, Preprocess{Resize: ResizeLetterbox, Scale: 1.0 / 255, SwapRB: true, Pad: 114}},
		{LayoutSSD, Preprocess{Resize: ResizeStretch, Scale: 1 / 127.5, Mean: [3]float64{127.5, 127.5, 127.5}, Pad: 114}},
	} {
		if got := DefaultPreprocess(tc.l); got != tc.want {
			t.Errorf("DefaultPreprocess(%s) = %+v, want %+v", tc.l, got, tc.want)
		}
	}
}
