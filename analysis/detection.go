package analysis

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/detector"
)

var (
	// Edge CPUs take 20 ms to seconds per frame, GPUs a few milliseconds.
	inferenceBuckets  = []float64{0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2}
	confidenceBuckets = []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95}
)

// Detection holds a camera's detection counters. They count frames, not
// scrapes: a key frame analyzed twice is detected once.
type Detection struct {
	// Objects counts the objects found of each counted class; every
	// counted class is there from the start, so that rate() sees the
	// first one.
	Objects map[string]uint64
	// Frames counts the frames run through the detector, Empty those it
	// found no object of a counted class in.
	Frames, Empty uint64
	// Inference holds the detector's time per frame, in seconds, without
	// the wait for a free network; Confidence the found objects'.
	Inference, Confidence Histogram
}

// Found is what the detector found in a frame, of the counted classes;
// shared by the analysis' readers, not to be modified.
type Found struct {
	Objects     map[string]int // per counted class, 0 included
	Confidences []float32
	Detections  []detector.Detection // in the picture's pixels
}

// detections keeps one camera's detection counters across scrapes.
type detections struct {
	detector detector.Detector // the detector whose results are counted

	mu     sync.Mutex // guards the fields below
	seq    uint64     // the frame detected last
	last   *Found
	counts Detection
}

func newDetections(det detector.Detector, classes []string) *detections {
	d := &detections{detector: det, counts: Detection{
		Objects:    make(map[string]uint64, len(classes)),
		Inference:  newHistogram(inferenceBuckets),
		Confidence: newHistogram(confidenceBuckets),
	}}
	for _, class := range classes {
		d.counts.Objects[class] = 0
	}
	return d
}

// detect runs a camera's frame through the detector, unless it is the frame
// detected last, and returns what it found of the counted classes.
func (d *detections) detect(cfg config.Camera, frame camera.Frame) (*Found, error) {
	d.mu.Lock()
	seq, last := d.seq, d.last
	d.mu.Unlock()
	if last != nil && seq == frame.Seq {
		return last, nil
	}
	// Analyses outlive scrapes; this bounds the wait for a free network.
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.Timeout))
	defer cancel()
	res, err := d.detector.Detect(ctx, frame.Picture, frame.Stats.Width, frame.Stats.Height)
	if err != nil {
		return nil, fmt.Errorf("detecting objects: %w", err)
	}
	return d.record(frame.Seq, res, cfg.Detect.Classes), nil
}

// record counts a detected frame's objects of the counted classes, all
// classes when none are listed.
func (d *detections) record(seq uint64, res detector.Result, classes []string) *Found {
	f := &Found{Objects: make(map[string]int, len(classes))}
	for _, class := range classes {
		f.Objects[class] = 0
	}
	for _, det := range res.Detections {
		if len(classes) > 0 && !slices.Contains(classes, det.Label) {
			continue
		}
		f.Objects[det.Label]++
		f.Confidences = append(f.Confidences, det.Confidence)
		f.Detections = append(f.Detections, det)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	c := &d.counts
	for _, conf := range f.Confidences {
		c.Confidence.observe(float64(conf))
	}
	for class, n := range f.Objects {
		c.Objects[class] += uint64(n)
	}
	c.Frames++
	if len(f.Confidences) == 0 {
		c.Empty++
	}
	c.Inference.observe(res.Duration.Seconds())
	d.seq, d.last = seq, f
	return f
}

// copy returns the camera's counters as they are now.
func (d *detections) copy() *Detection {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.counts
	c.Objects = maps.Clone(c.Objects)
	c.Inference, c.Confidence = c.Inference.clone(), c.Confidence.clone()
	return &c
}

// Histogram is the state of a histogram of observations: Counts[i] of them
// were at most Bounds[i] and above the bound before; not cumulative.
type Histogram struct {
	Bounds []float64
	Counts []uint64
	Count  uint64
	Sum    float64
}

func newHistogram(bounds []float64) Histogram {
	return Histogram{Bounds: bounds, Counts: make([]uint64, len(bounds))}
}

func (h *Histogram) observe(v float64) {
	if i, _ := slices.BinarySearch(h.Bounds, v); i < len(h.Bounds) {
		h.Counts[i]++
	}
	h.Count++
	h.Sum += v
}

// clone returns a copy that observations into h leave alone.
func (h Histogram) clone() Histogram {
	h.Counts = slices.Clone(h.Counts)
	return h
}
