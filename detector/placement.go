package detector

import "math"

// Resize is how a source picture is fitted into the network input.
type Resize string

// The ways to fit a picture into a network input.
const (
	ResizeLetterbox Resize = "letterbox" // keep aspect ratio, pad the rest (YOLOv5/v8)
	ResizeStretch   Resize = "stretch"   // scale each axis to the input (Darknet, SSD)
)

// Placement is where a source picture goes in the network input: scaled to
// Width x Height and put at (Left, Top) in an InputWidth x InputHeight input,
// the rest padded.
type Placement struct {
	Width, Height           int
	Left, Top               int
	InputWidth, InputHeight int
}

// Place computes the placement of a srcW x srcH picture in an inW x inH input.
// Any mode but ResizeLetterbox stretches.
func Place(mode Resize, srcW, srcH, inW, inH int) Placement {
	p := Placement{Width: inW, Height: inH, InputWidth: inW, InputHeight: inH}
	if mode != ResizeLetterbox || srcW < 1 || srcH < 1 {
		return p
	}
	s := math.Min(float64(inW)/float64(srcW), float64(inH)/float64(srcH))
	p.Width = min(max(int(math.Round(float64(srcW)*s)), 1), inW)
	p.Height = min(max(int(math.Round(float64(srcH)*s)), 1), inH)
	// Centered, as ultralytics letterboxes.
	p.Left = (inW - p.Width) / 2
	p.Top = (inH - p.Height) / 2
	return p
}

// ScaledSize returns the function that tells the size d's Place scales a
// srcW x srcH picture to: what a camera's analysis converts its picture to
// before Detect, without the camera knowing of detectors.
func ScaledSize(d Detector) func(srcW, srcH int) (width, height int) {
	return func(srcW, srcH int) (width, height int) {
		p := d.Place(srcW, srcH)
		return p.Width, p.Height
	}
}

// ToSource maps a box in network-input pixels back to the pixels of the
// srcW x srcH source picture, clipped to it. A box outside the picture
// becomes empty at its edge; an empty placement gives an empty box.
func (p Placement) ToSource(b Box, srcW, srcH int) Box {
	if p.Width < 1 || p.Height < 1 {
		return Box{}
	}
	sx := float32(srcW) / float32(p.Width)
	sy := float32(srcH) / float32(p.Height)
	left, top := float32(p.Left), float32(p.Top)
	w, h := float32(srcW), float32(srcH)
	// The builtin min and max keep a NaN, so garbage stays detectable.
	x1 := min(max((b.X-left)*sx, 0), w)
	y1 := min(max((b.Y-top)*sy, 0), h)
	x2 := min(max((b.X+b.Width-left)*sx, 0), w)
	y2 := min(max((b.Y+b.Height-top)*sy, 0), h)
	return Box{X: x1, Y: y1, Width: x2 - x1, Height: y2 - y1}
}
