package drift

// counts are the bin counts of a set of frames, kept up to date as frames
// come and go, so that neither the Builder nor the Window revisits them.
type counts struct {
	frames   int
	detected int // frames run through a detector
	image    [len(imageFeatures)][]float64
	// Of the detected frames.
	objects, empty, confidence []float64
	// classes holds the frames with at least one object of a class, by
	// bin; bin 0, the frames without, is detected minus those.
	classes map[string]*classCounts
}

type classCounts struct {
	bins   []float64
	frames int // with at least one object of the class
}

func newCounts() *counts {
	c := &counts{
		objects:    make([]float64, len(objectEdges)),
		empty:      make([]float64, len(emptyEdges)),
		confidence: make([]float64, len(confidenceEdges)),
		classes:    make(map[string]*classCounts),
	}
	for i := range imageFeatures {
		c.image[i] = make([]float64, len(imageFeatures[i].edges))
	}
	return c
}

// add counts f in, or out with d = -1.
func (c *counts) add(f *frame, d int) {
	fd := float64(d)
	c.frames += d
	for i, b := range f.image {
		c.image[i][b] += fd
	}
	if !f.detected {
		return
	}
	c.detected += d
	c.objects[f.objects] += fd
	c.empty[f.empty()] += fd
	for _, b := range f.confidence {
		c.confidence[b] += fd
	}
	for _, cb := range f.classes {
		cc := c.class(cb.class)
		cc.bins[cb.bin] += fd
		cc.frames += d
		if cc.frames == 0 && d < 0 {
			// Keeps a window's memory to the classes it holds.
			delete(c.classes, cb.class)
		}
	}
}

// class returns the counts of a class, creating them.
func (c *counts) class(name string) *classCounts {
	cc := c.classes[name]
	if cc == nil {
		cc = &classCounts{bins: make([]float64, len(objectEdges))}
		c.classes[name] = cc
	}
	return cc
}

// classHistogram writes the full histogram of a class, bin 0 included,
// into dst.
func (c *counts) classHistogram(dst []float64, name string) {
	clear(dst)
	if cc := c.classes[name]; cc != nil {
		copy(dst, cc.bins)
		dst[0] = float64(c.detected - cc.frames)
		return
	}
	dst[0] = float64(c.detected)
}
