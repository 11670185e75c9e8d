package detector

// Preprocess is how a picture becomes a network's input blob:
// blob = (pixel - Mean) * Scale, channels swapped from BGR to RGB when SwapRB.
type Preprocess struct {
	Resize Resize
	Scale  float64
	Mean   [3]float64 // per channel, in the picture's BGR order
	SwapRB bool
	// Pad is the gray level of letterbox padding (114 for YOLOv5/v8).
	Pad float64
}

// DefaultPreprocess is what models of the layout are usually trained with.
// An unknown layout gets Darknet's.
func DefaultPreprocess(l Layout) Preprocess {
	p := Preprocess{Resize: ResizeStretch, Scale: 1.0 / 255, SwapRB: true, Pad: 114}
	switch l {
	case LayoutYOLOv5, LayoutYOLOv8:
		p.Resize = ResizeLetterbox
	case LayoutSSD:
		// Caffe MobileNet-SSD: BGR scaled to -1..1.
		p.Scale = 1 / 127.5
		p.Mean = [3]float64{127.5, 127.5, 127.5}
		p.SwapRB = false
	}
	return p
}
