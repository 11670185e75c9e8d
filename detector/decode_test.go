package detector

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

var (
	nan = float32(math.NaN())
	inf = float32(math.Inf(1))
)

// rows makes a blob of the shape from its rows.
func rows(shape []int, rs ...[]float32) Output {
	var data []float32
	for _, r := range rs {
		data = append(data, r...)
	}
	return Output{Shape: shape, Data: data}
}

// anchors makes a YOLOv8 [1, 4+C, N] blob from one row of cx, cy, w, h and
// scores per anchor, transposing it as the network does.
func anchors(as ...[]float32) Output {
	ch := len(as[0])
	o := Output{Shape: []int{1, ch, len(as)}, Data: make([]float32, ch*len(as))}
	for j, a := range as {
		for c, v := range a {
			o.Data[c*len(as)+j] = v
		}
	}
	return o
}

func TestDecode(t *testing.T) {
	labels := []string{"person", "car"}
	// 1280x720 letterboxed into 640x640: scaled by 1/2, 140 px of padding on top.
	letterbox := Place(ResizeLetterbox, 1280, 720, 640, 640)
	// 640x424 stretched into 320x320: scaled by 1/2 across, 320/424 down.
	stretch := Place(ResizeStretch, 640, 424, 320, 320)
	ssdLabels := []string{"background", "person", "car"}
	ssdPlace := Place(ResizeStretch, 600, 400, 300, 300)

	for _, tc := range []struct {
		name    string
		d       Decoding
		outputs []Output
		want    []Detection
	}{
		{
			name: "yolov8",
			d:    Decoding{Layout: LayoutYOLOv8, Placement: letterbox, SrcWidth: 1280, SrcHeight: 720, Labels: labels, Confidence: 0.25, NMS: 0.45},
			outputs: []Output{anchors(
				[]float32{100, 200, 20, 20, 0.2, 0.1},  // below the threshold
				[]float32{324, 320, 64, 64, 0.8, 0.1},  // weaker duplicate, IoU 0.88
				[]float32{320, 320, 64, 64, 0.05, 0.7}, // a car in the same place
				[]float32{320, 320, 64, 64, 0.9, 0.1},  // the person
				[]float32{160, 240, 40, 20, 0.1, 0.3},  // a car elsewhere
				[]float32{320, 100, 64, 64, 0.9, 0.9},  // in the padding: no area
			)},
			want: []Detection{
				{0, "person", 0.9, Box{576, 296, 128, 128}},
				{1, "car", 0.7, Box{576, 296, 128, 128}},
				{1, "car", 0.3, Box{280, 180, 80, 40}},
			},
		},
		{
			name: "yolov5",
			d:    Decoding{Layout: LayoutYOLOv5, Placement: letterbox, SrcWidth: 1280, SrcHeight: 720, Labels: labels, Confidence: 0.25, NMS: 0.45},
			outputs: []Output{rows([]int{1, 5, 7},
				[]float32{320, 320, 64, 64, 0.9, 1, 0},       // person 0.9
				[]float32{160, 240, 40, 20, 0.8, 0.25, 0.75}, // car 0.6
				[]float32{500, 300, 10, 10, 0.9, 0.2, 0.1},   // objectness high, person 0.18
				[]float32{500, 300, 10, 10, 0.1, 1, 0},       // objectness low
				[]float32{322, 322, 64, 64, 0.85, 1, 0},      // duplicate person
			)},
			want: []Detection{
				{0, "person", 0.9, Box{576, 296, 128, 128}},
				{1, "car", 0.6, Box{280, 180, 80, 40}},
			},
		},
		{
			name: "darknet",
			d:    Decoding{Layout: LayoutDarknet, Placement: stretch, SrcWidth: 640, SrcHeight: 424, Labels: labels, Confidence: 0.25, NMS: 0.45},
			outputs: []Output{
				rows([]int{2, 7},
					[]float32{0.5, 0.5, 0.25, 0.5, 0.9, 0.85, 0}, // input 120..200 x 80..240
					[]float32{0, 0, 0, 0, 0, 0, 0},               // zeroed by OpenCV
				),
				rows([]int{2, 7},
					[]float32{0.25, 0.25, 0.1, 0.1, 0.7, 0, 0.6},  // input 64..96 x 64..96
					[]float32{0.95, 0.5, 0.2, 0.2, 0.5, 0.5, 0.1}, // input 272..336 x 128..192, clipped
				),
			},
			want: []Detection{
				{0, "person", 0.85, Box{240, 106, 160, 212}},
				{1, "car", 0.6, Box{128, 84.8, 64, 42.4}},
				{0, "person", 0.5, Box{544, 169.6, 96, 84.8}},
			},
		},
		{
			name: "ssd",
			d:    Decoding{Layout: LayoutSSD, Placement: ssdPlace, SrcWidth: 600, SrcHeight: 400, Labels: ssdLabels, Confidence: 0.25, NMS: 0.45},
			outputs: []Output{rows([]int{1, 1, 9, 7},
				[]float32{0, 2, 0.6, 0.5, 0.5, 0.75, 1},      // car
				[]float32{0, 1, 0.95, 0.1, 0.2, 0.3, 0.5},    // person
				[]float32{0, 15, 0.5, 0, 0, 0.5, 0.5},        // no label
				[]float32{0, -1, 0.9, 0.1, 0.1, 0.2, 0.2},    // negative class
				[]float32{0, nan, 0.9, 0.1, 0.1, 0.2, 0.2},   // NaN class
				[]float32{0, 1, 0.1, 0.1, 0.1, 0.2, 0.2},     // below the threshold
				[]float32{0, 1, 0.9, 0.5, 0.5, 0.5, 0.5},     // no area
				[]float32{0, 1, 0.9, 0.11, 0.21, 0.31, 0.51}, // duplicate person
				[]float32{-1, 0, 0, 0, 0, 0, 0},              // OpenCV's "nothing found"
			)},
			want: []Detection{
				{1, "person", 0.95, Box{60, 80, 120, 120}},
				{2, "car", 0.6, Box{300, 200, 150, 200}},
				{15, "15", 0.5, Box{0, 0, 300, 200}},
			},
		},
		{
			name:    "nothing found",
			d:       Decoding{Layout: LayoutSSD, Placement: ssdPlace, SrcWidth: 600, SrcHeight: 400, Labels: ssdLabels, Confidence: 0.25, NMS: 0.45},
			outputs: []Output{rows([]int{1, 1, 1, 7}, []float32{-1, 0, 0, 0, 0, 0, 0})},
		},
		{
			name: "garbage dropped",
			d:    Decoding{Layout: LayoutYOLOv8, Placement: letterbox, SrcWidth: 1280, SrcHeight: 720, Labels: labels, Confidence: 0.25, NMS: 0.45},
			outputs: []Output{anchors(
				[]float32{320, 320, 64, 64, nan, nan},
				[]float32{320, 320, 64, 64, inf, 0},
				[]float32{nan, 320, 64, 64, 0.9, 0},
				[]float32{320, 320, inf, 64, 0.9, 0},
				[]float32{320, 320, -64, 64, 0.9, 0},
				[]float32{320, 320, 64, 64, nan, 0.5}, // a NaN score does not hide the other
			)},
			want: []Detection{
				{1, "car", 0.5, Box{576, 296, 128, 128}},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode(tc.outputs, tc.d)
			if err != nil {
				t.Fatal(err)
			}
			if !detectionsNear(got, tc.want) {
				t.Errorf("got\n%v\nwant\n%v", got, tc.want)
			}
		})
	}
}

func detectionsNear(a, b []Detection) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Class != b[i].Class || a[i].Label != b[i].Label ||
			!near(a[i].Confidence, b[i].Confidence, 1e-6) || !boxNear(a[i].Box, b[i].Box, 1e-3) {
			return false
		}
	}
	return true
}

func TestDecodeErrors(t *testing.T) {
	labels := []string{"person", "car"}
	p := Place(ResizeLetterbox, 1280, 720, 640, 640)
	for _, tc := range []struct {
		name    string
		layout  Layout
		outputs []Output
		err     string
	}{
		{"short data", LayoutYOLOv8, []Output{{Shape: []int{1, 6, 3}, Data: make([]float32, 17)}}, "output 0 of shape [1 6 3] holds 17 values"},
		{"long data", LayoutYOLOv5, []Output{{Shape: []int{1, 3, 7}, Data: make([]float32, 22)}}, "holds 22 values"},
		{"second output short", LayoutDarknet, []Output{
			{Shape: []int{2, 7}, Data: make([]float32, 14)},
			{Shape: []int{2, 7}, Data: make([]float32, 13)},
		}, "output 1 of shape [2 7] holds 13 values"},
		{"huge shape", LayoutYOLOv5, []Output{{Shape: []int{1, math.MaxInt / 2, 7}, Data: make([]float32, 7)}}, "holds 7 values"},
		{"wrong classes", LayoutYOLOv8, []Output{{Shape: []int{1, 85, 3}, Data: make([]float32, 255)}}, "it wants [1 6 N]"},
		{"wrong layout", LayoutSSD, []Output{{Shape: []int{1, 6, 3}, Data: make([]float32, 18)}}, "it wants [1 1 N 7]"},
		{"no outputs", LayoutYOLOv8, nil, "outputs (none) do not fit"},
		{"negative size", LayoutDarknet, []Output{{Shape: []int{-1, 7}}}, "do not fit"},
		{"unknown layout", "", []Output{{Shape: []int{1, 6, 3}, Data: make([]float32, 18)}}, "unknown layout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Decoding{Layout: tc.layout, Placement: p, SrcWidth: 1280, SrcHeight: 720, Labels: labels, Confidence: 0.25, NMS: 0.45}
			got, err := Decode(tc.outputs, d)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Decode = %v, %v; want error containing %q", got, err, tc.err)
			}
		})
	}
}

// TestDecodeNoise feeds random values, NaNs and infinities of the right
// shapes: whatever comes out must be finite and inside the picture.
func TestDecodeNoise(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	values := []float32{nan, inf, -inf, 0, -1, 1, math.MaxFloat32, -math.MaxFloat32, 1e30}
	value := func() float32 {
		switch r.IntN(4) {
		case 0:
			return values[r.IntN(len(values))]
		case 1:
			return r.Float32() * 700
		}
		return r.Float32()
	}
	labels := []string{"a", "b", "c"}
	for _, tc := range []struct {
		layout Layout
		shapes [][]int
	}{
		{LayoutDarknet, [][]int{{50, 8}, {20, 8}}},
		{LayoutYOLOv5, [][]int{{1, 50, 8}}},
		{LayoutYOLOv8, [][]int{{1, 7, 50}}},
		{LayoutSSD, [][]int{{1, 1, 50, 7}}},
	} {
		for range 200 {
			outputs := make([]Output, len(tc.shapes))
			for i, s := range tc.shapes {
				n, _ := elements(s)
				outputs[i] = Output{Shape: s, Data: make([]float32, n)}
				for j := range outputs[i].Data {
					outputs[i].Data[j] = value()
				}
			}
			d := Decoding{Layout: tc.layout, Placement: Place(ResizeLetterbox, 800, 600, 640, 640),
				SrcWidth: 800, SrcHeight: 600, Labels: labels, Confidence: 0.5, NMS: 0.45}
			dets, err := Decode(outputs, d)
			if err != nil {
				t.Fatalf("%s: %v", tc.layout, err)
			}
			for _, det := range dets {
				b := det.Box
				if !(det.Confidence >= 0.5 && det.Confidence <= math.MaxFloat32) ||
					!(b.X >= 0 && b.Y >= 0 && b.Width > 0 && b.Height > 0 && b.X+b.Width <= 800 && b.Y+b.Height <= 600) {
					t.Errorf("%s: bad detection %+v", tc.layout, det)
				}
			}
		}
	}
}

func TestNMS(t *testing.T) {
	a := Box{0, 0, 10, 10}
	b := Box{1, 0, 10, 10} // IoU with a: 90/110 = 0.82
	c := Box{5, 0, 10, 10} // IoU with a: 50/150 = 0.33
	far := Box{100, 100, 10, 10}
	for _, tc := range []struct {
		name string
		in   []Detection
		iou  float32
		want []Detection
	}{
		{"empty", nil, 0.5, nil},
		{
			name: "weaker duplicate dropped",
			in:   []Detection{{Class: 0, Confidence: 0.5, Box: b}, {Class: 0, Confidence: 0.9, Box: a}},
			iou:  0.5,
			want: []Detection{{Class: 0, Confidence: 0.9, Box: a}},
		},
		{
			name: "class-wise",
			in:   []Detection{{Class: 1, Confidence: 0.5, Box: b}, {Class: 0, Confidence: 0.9, Box: a}},
			iou:  0.5,
			want: []Detection{{Class: 0, Confidence: 0.9, Box: a}, {Class: 1, Confidence: 0.5, Box: b}},
		},
		{
			name: "overlap under threshold kept",
			in:   []Detection{{Confidence: 0.9, Box: a}, {Confidence: 0.8, Box: c}, {Confidence: 0.7, Box: b}},
			iou:  0.45,
			want: []Detection{{Confidence: 0.9, Box: a}, {Confidence: 0.8, Box: c}},
		},
		{
			name: "dropped box suppresses nothing",
			in:   []Detection{{Confidence: 0.9, Box: a}, {Confidence: 0.8, Box: b}, {Confidence: 0.7, Box: Box{2, 0, 10, 10}}},
			iou:  0.7, // the third overlaps a by 0.67 and b, which is dropped, by 0.82
			want: []Detection{{Confidence: 0.9, Box: a}, {Confidence: 0.7, Box: Box{2, 0, 10, 10}}},
		},
		{
			name: "ties by class then position",
			in: []Detection{
				{Class: 2, Confidence: 0.5, Box: far},
				{Class: 1, Confidence: 0.5, Box: c},
				{Class: 1, Confidence: 0.5, Box: far},
				{Class: 0, Confidence: 0.6, Box: a},
			},
			iou: 0.5,
			want: []Detection{
				{Class: 0, Confidence: 0.6, Box: a},
				{Class: 1, Confidence: 0.5, Box: c},
				{Class: 1, Confidence: 0.5, Box: far},
				{Class: 2, Confidence: 0.5, Box: far},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := nms(tc.in, tc.iou); !detectionsNear(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func BenchmarkDecodeYOLOv8(b *testing.B) {
	const n, classes = 8400, 80
	r := rand.New(rand.NewPCG(1, 2))
	o := Output{Shape: []int{1, 4 + classes, n}, Data: make([]float32, (4+classes)*n)}
	for j := range n {
		o.Data[j] = r.Float32() * 640
		o.Data[n+j] = r.Float32() * 640
		o.Data[2*n+j] = 10 + r.Float32()*100
		o.Data[3*n+j] = 10 + r.Float32()*100
		for c := range classes {
			o.Data[(4+c)*n+j] = r.Float32() * 0.1
		}
	}
	// About 20 real objects, at anchors spread over the input.
	for j := 0; j < n; j += n / 20 {
		o.Data[(4+r.IntN(classes))*n+j] = 0.5 + r.Float32()*0.4
	}
	labels := make([]string, classes)
	for i := range labels {
		labels[i] = string(rune('a' + i%26))
	}
	d := Decoding{Layout: LayoutYOLOv8, Placement: Place(ResizeLetterbox, 1920, 1080, 640, 640),
		SrcWidth: 1920, SrcHeight: 1080, Labels: labels, Confidence: 0.25, NMS: 0.45}
	outputs := []Output{o}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(outputs, d); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDecodePaddingSuppressesNothing checks that a box wholly in the
// letterbox's padding, dropped anyway, does not suppress a real box that
// it overlaps in the input.
func TestDecodePaddingSuppressesNothing(t *testing.T) {
	// 1280x720 letterboxed into 640x640: 140 px of padding on top.
	d := Decoding{Layout: LayoutYOLOv8, Placement: Place(ResizeLetterbox, 1280, 720, 640, 640),
		SrcWidth: 1280, SrcHeight: 720, Labels: []string{"person"}, Confidence: 0.25, NMS: 0.45}
	got, err := Decode([]Output{anchors(
		[]float32{320, 109.5, 64, 59, 0.9}, // y 80 to 139: the padding alone
		[]float32{320, 130, 64, 60, 0.8},   // y 100 to 160, IoU 0.49 with it
	)}, d)
	if err != nil {
		t.Fatal(err)
	}
	want := []Detection{{0, "person", 0.8, Box{576, 0, 128, 40}}}
	if !detectionsNear(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
