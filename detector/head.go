package detector

import (
	"fmt"
	"math"
)

// Head describes the raw output of an anchor-free YOLOv8 or YOLO11 head,
// which the exporter decodes itself where OpenCV cannot run the decode at
// the end of the graph: one [1, 4*Bins + C, N] blob where each of the N
// cells of the three feature maps has, for each side of its box (left, top,
// right, bottom), a distribution over Bins distances (distribution focal
// loss), then a logit per class.
type Head struct {
	Bins  int
	Cells []Cell
}

// Cell is where one column of a head's output sits: its center in cells
// of its feature map, and the stride of that map in input pixels.
type Cell struct {
	X, Y, Stride float32
}

// NewHead lays out the cells of a head over an inW x inH input: for each
// stride in order, the cells of its map row by row. The input must be a
// multiple of every stride, as exports require.
func NewHead(bins, inW, inH int, strides []int) (Head, error) {
	if bins < 1 || inW < 1 || inH < 1 {
		return Head{}, fmt.Errorf("head with %d bins over a %dx%d input", bins, inW, inH)
	}
	h := Head{Bins: bins}
	for _, s := range strides {
		if s < 1 || inW%s != 0 || inH%s != 0 {
			return Head{}, fmt.Errorf("input %dx%d is not a multiple of stride %d", inW, inH, s)
		}
		for y := range inH / s {
			for x := range inW / s {
				h.Cells = append(h.Cells, Cell{X: float32(x) + 0.5, Y: float32(y) + 0.5, Stride: float32(s)})
			}
		}
	}
	return h, nil
}

// shape is the output shape of the head for this many classes.
func (h *Head) shape(classes int) []int {
	return []int{1, 4*h.Bins + classes, len(h.Cells)}
}

// Check reports whether a network's outputs are this head's raw output
// for this many classes, with an error naming the shapes if not.
func (h *Head) Check(shapes [][]int, classes int) error {
	if want := h.shape(classes); len(shapes) != 1 || !shapeIs(shapes[0], want...) {
		return fmt.Errorf("outputs %s are not the raw head's %v for %d classes", formatShapes(shapes), want, classes)
	}
	return nil
}

// decodeHead decodes the raw head output o: the class scores are the
// sigmoids of the logits, the box sides the expectations of their
// distributions.
func (d *Decoding) decodeHead(dets []Detection, o Output) []Detection {
	n := len(d.Head.Cells)
	bins := d.Head.Bins
	logits := o.Data[4*bins*n:]
	// sigmoid(x) >= c exactly when x >= log(c / (1-c)): the threshold is
	// checked on the logits, and only the few cells over it pay for the
	// sigmoid and the distributions.
	threshold := float32(math.Inf(-1))
	if c := float64(d.Confidence); c > 0 {
		// A confidence of 1 keeps the scores that round to 1 in float32,
		// as the decoded layout does, rather than none.
		c = min(c, 1-0x1p-25)
		threshold = float32(math.Log(c / (1 - c)))
	}
	for _, j := range columnsOver(logits, n, threshold) {
		class, best := columnMax(logits, n, j)
		var side [4]float32
		for k := range side {
			side[k] = expectation(o.Data[k*bins*n+j:], bins, n)
		}
		cell := d.Head.Cells[j]
		x1, y1 := (cell.X-side[0])*cell.Stride, (cell.Y-side[1])*cell.Stride
		x2, y2 := (cell.X+side[2])*cell.Stride, (cell.Y+side[3])*cell.Stride
		box := Box{X: x1, Y: y1, Width: x2 - x1, Height: y2 - y1}
		dets = d.add(dets, class, sigmoid(best), box)
	}
	return dets
}

// expectation is the mean of the softmax distribution over bins whose
// logits are data[0], data[stride], ... data[(bins-1)*stride].
func expectation(data []float32, bins, stride int) float32 {
	peak := float32(math.Inf(-1))
	for b := range bins {
		peak = max(peak, data[b*stride])
	}
	var sum, weighted float64
	for b := range bins {
		e := math.Exp(float64(data[b*stride] - peak))
		sum += e
		weighted += float64(b) * e
	}
	return float32(weighted / sum)
}

func sigmoid(x float32) float32 {
	return float32(1 / (1 + math.Exp(-float64(x))))
}
