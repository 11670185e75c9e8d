package detector

import (
	"math"
	"math/rand/v2"
	"testing"
)

// yoloStrides are the strides of the feature maps of YOLOv8 and YOLO11
// heads, in the order their cells come in the output.
var yoloStrides = []int{8, 16, 32}

func TestNewHead(t *testing.T) {
	h, err := NewHead(16, 64, 32, yoloStrides)
	if err != nil {
		t.Fatal(err)
	}
	// 8x4 cells of stride 8, 4x2 of 16, 2x1 of 32.
	if len(h.Cells) != 32+8+2 {
		t.Fatalf("%d cells, want 42", len(h.Cells))
	}
	for i, want := range map[int]Cell{
		0:  {0.5, 0.5, 8},
		9:  {1.5, 1.5, 8}, // second row of the first map
		31: {7.5, 3.5, 8},
		32: {0.5, 0.5, 16},
		41: {1.5, 0.5, 32},
	} {
		if h.Cells[i] != want {
			t.Errorf("cell %d is %v, want %v", i, h.Cells[i], want)
		}
	}
	for _, size := range [][2]int{{60, 64}, {64, 40}, {0, 64}} {
		if _, err := NewHead(16, size[0], size[1], yoloStrides); err == nil {
			t.Errorf("input %dx%d: no error, want one: not a multiple of 32", size[0], size[1])
		}
	}
}

// rawHead makes the [1, 4*bins+C, N] output of a head from one column per
// cell: 4*bins distance logits, then C class logits.
func rawHead(h Head, classes int, column func(j int) []float32) Output {
	n := len(h.Cells)
	ch := 4*h.Bins + classes
	o := Output{Shape: []int{1, ch, n}, Data: make([]float32, ch*n)}
	for j := range n {
		for c, v := range column(j) {
			o.Data[c*n+j] = v
		}
	}
	return o
}

// peaked is the logits of a distribution over bins whose expectation is
// very nearly at: all the mass on the two bins around it.
func peaked(bins int, at float64) []float32 {
	l := make([]float32, bins)
	lo := int(math.Floor(at))
	for b := range l {
		l[b] = -100
	}
	frac := at - float64(lo)
	l[lo] = float32(math.Log(1 - frac + 1e-12))
	if lo+1 < bins {
		l[lo+1] = float32(math.Log(frac + 1e-12))
	}
	return l
}

func TestDecodeHead(t *testing.T) {
	const bins = 16
	h, err := NewHead(bins, 64, 64, yoloStrides)
	if err != nil {
		t.Fatal(err)
	}
	logit := func(p float64) float32 { return float32(math.Log(p / (1 - p))) }
	// Cell 9 is (1.5, 1.5) at stride 8; cell 64 is the first of stride 16.
	columns := map[int][]float32{
		9:  append(append(append(append(peaked(bins, 1), peaked(bins, 1.5)...), peaked(bins, 2)...), peaked(bins, 0.5)...), logit(0.9), logit(0.1)),
		64: append(append(append(append(peaked(bins, 0.5), peaked(bins, 0.5)...), peaked(bins, 1.5)...), peaked(bins, 3.5)...), logit(0.2), logit(0.6)),
		70: append(append(append(append(peaked(bins, 1), peaked(bins, 1)...), peaked(bins, 1)...), peaked(bins, 1)...), logit(0.24), logit(0.1)),
	}
	out := rawHead(h, 2, func(j int) []float32 {
		if c, ok := columns[j]; ok {
			return c
		}
		c := make([]float32, 4*bins+2)
		c[4*bins], c[4*bins+1] = -8, -9
		return c
	})
	d := Decoding{Layout: LayoutYOLOv8, Head: &h, Placement: Place(ResizeLetterbox, 64, 64, 64, 64),
		SrcWidth: 64, SrcHeight: 64, Labels: []string{"person", "car"}, Confidence: 0.25, NMS: 0.45}
	got, err := Decode([]Output{out}, d)
	if err != nil {
		t.Fatal(err)
	}
	want := []Detection{
		// (1.5-1, 1.5-1.5) to (1.5+2, 1.5+0.5) cells of 8 px.
		{0, "person", 0.9, Box{4, 0, 24, 16}},
		// (0.5-0.5, 0.5-0.5) to (0.5+1.5, 0.5+3.5) cells of 16 px.
		{1, "car", 0.6, Box{0, 0, 32, 64}},
	}
	if !detectionsNear(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}

	d.Labels = d.Labels[:1]
	if _, err := Decode([]Output{out}, d); err == nil {
		t.Error("a head of 2 classes decoded for 1, want an error")
	}
}

// TestDecodeHeadAsDefined compares the decoding with the definition on
// random logits: every score the sigmoid of its logit, every side the
// expectation of the softmax of its bins, boxes from the cell's center.
func TestDecodeHeadAsDefined(t *testing.T) {
	const bins, classes = 16, 3
	h, err := NewHead(bins, 96, 64, yoloStrides)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	out := rawHead(h, classes, func(int) []float32 {
		c := make([]float32, 4*bins+classes)
		for i := range c {
			c[i] = float32(r.NormFloat64() * 3)
		}
		return c
	})
	n := len(h.Cells)
	var want []Detection
	for j, cell := range h.Cells {
		var side [4]float64
		for k := range side {
			var sum, mean float64
			for b := range bins {
				e := math.Exp(float64(out.Data[(k*bins+b)*n+j]))
				sum += e
				mean += float64(b) * e
			}
			side[k] = mean / sum
		}
		class, score := 0, 0.0
		for c := range classes {
			if s := 1 / (1 + math.Exp(-float64(out.Data[(4*bins+c)*n+j]))); s > score {
				class, score = c, s
			}
		}
		if score < 0.9 {
			continue
		}
		s := float64(cell.Stride)
		x1, y1 := (float64(cell.X)-side[0])*s, (float64(cell.Y)-side[1])*s
		x2, y2 := (float64(cell.X)+side[2])*s, (float64(cell.Y)+side[3])*s
		x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, 96), min(y2, 64)
		want = append(want, Detection{Class: class, Label: []string{"a", "b", "c"}[class], Confidence: float32(score),
			Box: Box{float32(x1), float32(y1), float32(x2 - x1), float32(y2 - y1)}})
	}
	if len(want) < 5 {
		t.Fatalf("only %d cells over the threshold: the test needs more", len(want))
	}
	// No suppression: every box over the threshold is kept.
	d := Decoding{Layout: LayoutYOLOv8, Head: &h, Placement: Place(ResizeLetterbox, 96, 64, 96, 64),
		SrcWidth: 96, SrcHeight: 64, Labels: []string{"a", "b", "c"}, Confidence: 0.9, NMS: 1}
	got, err := Decode([]Output{out}, d)
	if err != nil {
		t.Fatal(err)
	}
	if !detectionsNear(got, nms(want, 1)) {
		t.Errorf("got %d detections %v\nwant %d %v", len(got), got, len(want), want)
	}
}

func BenchmarkDecodeHead(b *testing.B) {
	const bins, classes = 16, 80
	h, err := NewHead(bins, 640, 640, yoloStrides)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	n := len(h.Cells)
	out := rawHead(h, classes, func(j int) []float32 {
		c := make([]float32, 4*bins+classes)
		for i := range 4 * bins {
			c[i] = float32(r.NormFloat64() * 2)
		}
		for i := 4 * bins; i < len(c); i++ {
			c[i] = -6 + float32(r.NormFloat64())
		}
		// About 20 real objects, at cells spread over the input.
		if j%(n/20) == 0 {
			c[4*bins+r.IntN(classes)] = 2
		}
		return c
	})
	labels := make([]string, classes)
	for i := range labels {
		labels[i] = string(rune('a' + i%26))
	}
	d := Decoding{Layout: LayoutYOLOv8, Head: &h, Placement: Place(ResizeLetterbox, 1920, 1080, 640, 640),
		SrcWidth: 1920, SrcHeight: 1080, Labels: labels, Confidence: 0.25, NMS: 0.45}
	outputs := []Output{out}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(outputs, d); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDecodeHeadConfidenceOne checks that a confidence of 1 keeps the
// scores that are 1 in float32, as the decoded layout does.
func TestDecodeHeadConfidenceOne(t *testing.T) {
	h, err := NewHead(2, 32, 32, yoloStrides)
	if err != nil {
		t.Fatal(err)
	}
	// Every side half a cell; sigmoid(30) is 1 in float32, sigmoid(10) not.
	out := rawHead(h, 1, func(j int) []float32 {
		if j == 0 {
			return []float32{0, 0, 0, 0, 0, 0, 0, 0, 30}
		}
		return []float32{0, 0, 0, 0, 0, 0, 0, 0, 10}
	})
	d := Decoding{Layout: LayoutYOLOv8, Head: &h, Placement: Place(ResizeLetterbox, 32, 32, 32, 32),
		SrcWidth: 32, SrcHeight: 32, Labels: []string{"person"}, Confidence: 1, NMS: 0.45}
	got, err := Decode([]Output{out}, d)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Confidence != 1 {
		t.Errorf("got %v, want the one detection of score 1", got)
	}
}
