package detector

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// Output is one output blob of a network, row-major.
type Output struct {
	Shape []int
	Data  []float32
}

// Decoding holds what Decode needs besides the outputs.
type Decoding struct {
	Layout              Layout
	Placement           Placement
	SrcWidth, SrcHeight int
	Labels              []string
	Confidence          float32 // keep detections at or above this
	NMS                 float32 // IoU above which the weaker of two same-class boxes is dropped
	// Head, for LayoutYOLOv8, is the raw head whose output the network
	// gives instead of the decoded [1, 4+C, N]; nil for the decoded one.
	Head *Head
}

// Decode turns a network's outputs into detections in source pixels, sorted by
// descending confidence: confidence threshold, then class-wise non-maximum suppression.
// Outputs that do not fit the layout are an error; detections with a confidence
// or a box that is not finite are dropped.
func Decode(outputs []Output, d Decoding) ([]Detection, error) {
	shapes := make([][]int, len(outputs))
	for i, o := range outputs {
		shapes[i] = o.Shape
	}
	if d.Head != nil {
		if d.Layout != LayoutYOLOv8 {
			return nil, fmt.Errorf("a raw head is decoded for layout %s only, not %s", LayoutYOLOv8, d.Layout)
		}
		if err := d.Head.Check(shapes, len(d.Labels)); err != nil {
			return nil, err
		}
	} else if err := CheckLayout(d.Layout, shapes, len(d.Labels)); err != nil {
		return nil, err
	}
	for i, o := range outputs {
		if n, ok := elements(o.Shape); !ok || n != len(o.Data) {
			return nil, fmt.Errorf("output %d of shape %v holds %d values", i, o.Shape, len(o.Data))
		}
	}
	var dets []Detection
	switch d.Layout {
	case LayoutDarknet:
		for _, o := range outputs {
			dets = d.darknet(dets, o)
		}
	case LayoutYOLOv5:
		dets = d.yolov5(dets, outputs[0])
	case LayoutYOLOv8:
		if d.Head != nil {
			dets = d.decodeHead(dets, outputs[0])
		} else {
			dets = d.yolov8(dets, outputs[0])
		}
	case LayoutSSD:
		dets = d.ssd(dets, outputs[0])
	}
	// Suppressed in the input's pixels, as the models' own tools do, then
	// mapped to the source.
	dets = nms(dets, d.NMS)
	for i := range dets {
		dets[i].Box = d.Placement.ToSource(dets[i].Box, d.SrcWidth, d.SrcHeight)
	}
	return dets, nil
}

// elements is the number of values in a blob of the shape; false if the
// shape is invalid or the count overflows.
func elements(shape []int) (int, bool) {
	n := 1
	for _, s := range shape {
		if s < 0 || s > 0 && n > math.MaxInt/s {
			return 0, false
		}
		n *= s
	}
	return n, true
}

func (d *Decoding) darknet(dets []Detection, o Output) []Detection {
	w := o.Shape[1]
	iw, ih := float32(d.Placement.InputWidth), float32(d.Placement.InputHeight)
	for r := range o.Shape[0] {
		row := o.Data[r*w : (r+1)*w]
		class, conf := argmax(row[5:])
		dets = d.add(dets, class, conf, centered(row[0]*iw, row[1]*ih, row[2]*iw, row[3]*ih))
	}
	return dets
}

func (d *Decoding) yolov5(dets []Detection, o Output) []Detection {
	w := o.Shape[2]
	for r := range o.Shape[1] {
		row := o.Data[r*w : (r+1)*w]
		// Class probabilities are at most 1, so objectness bounds the
		// confidence: skipping on it, as ultralytics does, saves the classes.
		obj := row[4]
		if !(obj >= d.Confidence) {
			continue
		}
		class, p := argmax(row[5:])
		dets = d.add(dets, class, obj*p, centered(row[0], row[1], row[2], row[3]))
	}
	return dets
}

func (d *Decoding) yolov8(dets []Detection, o Output) []Detection {
	n := o.Shape[2]
	scores := o.Data[4*n:]
	for _, j := range columnsOver(scores, n, d.Confidence) {
		class, conf := columnMax(scores, n, j)
		dets = d.add(dets, class, conf, centered(o.Data[j], o.Data[n+j], o.Data[2*n+j], o.Data[3*n+j]))
	}
	return dets
}

// columnsOver lists the columns of scores, a transposed blob of rows of n
// values, one row per class, in which some score reaches threshold.
// Scanning row by row reads memory in order and rarely branches; only the
// few columns found then gather their scores.
func columnsOver(scores []float32, n int, threshold float32) []int {
	over := make([]bool, n)
	for c := range len(scores) / n {
		row := scores[c*n : (c+1)*n]
		ov := over[:len(row)]
		for j, v := range row {
			if v >= threshold {
				ov[j] = true
			}
		}
	}
	var columns []int
	for j, ok := range over {
		if ok {
			columns = append(columns, j)
		}
	}
	return columns
}

// columnMax is the class with the greatest score in column j of scores,
// and that score.
func columnMax(scores []float32, n, j int) (int, float32) {
	class, best := 0, float32(math.Inf(-1))
	for c := range len(scores) / n {
		if v := scores[c*n+j]; v > best {
			class, best = c, v
		}
	}
	return class, best
}

func (d *Decoding) ssd(dets []Detection, o Output) []Detection {
	iw, ih := float32(d.Placement.InputWidth), float32(d.Placement.InputHeight)
	for r := range o.Shape[2] {
		row := o.Data[r*7 : r*7+7]
		// OpenCV fills a row with image_id -1 when it found nothing.
		if row[0] < 0 {
			continue
		}
		id := row[1]
		if !(id >= 0 && id <= math.MaxInt32) {
			continue
		}
		x1, y1 := row[3]*iw, row[4]*ih
		box := Box{X: x1, Y: y1, Width: row[5]*iw - x1, Height: row[6]*ih - y1}
		dets = d.add(dets, int(id), row[2], box)
	}
	return dets
}

// add appends a detection of a box in input pixels if it passes the
// confidence threshold and keeps an area in the source picture: a box in
// the letterbox's padding alone must not suppress a real one.
func (d *Decoding) add(dets []Detection, class int, conf float32, b Box) []Detection {
	if !(conf >= d.Confidence && conf <= math.MaxFloat32) {
		return dets
	}
	if src := d.Placement.ToSource(b, d.SrcWidth, d.SrcHeight); !(src.Width > 0 && src.Height > 0) {
		return dets
	}
	label := strconv.Itoa(class)
	if class < len(d.Labels) {
		label = d.Labels[class]
	}
	return append(dets, Detection{Class: class, Label: label, Confidence: conf, Box: b})
}

// argmax returns the index and value of the greatest score, NaNs ignored
// unless all are.
func argmax(scores []float32) (int, float32) {
	class, best := 0, float32(math.Inf(-1))
	for i, v := range scores {
		if v > best {
			class, best = i, v
		}
	}
	if best == float32(math.Inf(-1)) {
		return 0, float32(math.NaN())
	}
	return class, best
}

// centered makes a box from its center and size.
func centered(cx, cy, w, h float32) Box {
	return Box{X: cx - w/2, Y: cy - h/2, Width: w, Height: h}
}

// nms is class-wise greedy non-maximum suppression: it sorts dets by
// descending confidence, ties by class then original position, and drops
// each box whose IoU with a stronger kept box of its class exceeds iou.
// It reuses dets.
func nms(dets []Detection, iou float32) []Detection {
	slices.SortStableFunc(dets, func(a, b Detection) int {
		if c := cmp.Compare(b.Confidence, a.Confidence); c != 0 {
			return c
		}
		return cmp.Compare(a.Class, b.Class)
	})
	kept := dets[:0]
next:
	for _, d := range dets {
		for _, k := range kept {
			if k.Class == d.Class && overlap(k.Box, d.Box) > iou {
				continue next
			}
		}
		kept = append(kept, d)
	}
	return kept
}

// overlap is the intersection over union of two boxes.
func overlap(a, b Box) float32 {
	w := min(a.X+a.Width, b.X+b.Width) - max(a.X, b.X)
	h := min(a.Y+a.Height, b.Y+b.Height) - max(a.Y, b.Y)
	if w <= 0 || h <= 0 {
		return 0
	}
	inter := w * h
	return inter / (a.Width*a.Height + b.Width*b.Height - inter)
}
