package collector

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/detector"
)

var (
	// Edge CPUs take 20 ms to seconds per frame, GPUs a few milliseconds.
	inferenceBuckets  = []float64{0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2}
	confidenceBuckets = []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95}
)

// detectionDescs describe the detection metrics of the image collector.
type detectionDescs struct {
	objects, objectsTotal, frames, empty, inference, confidence, info *prometheus.Desc
}

func newDetectionDescs() detectionDescs {
	return detectionDescs{
		objects: cameraDesc("detected_objects",
			"Objects of each counted class the detector found in the camera's latest analyzed frame.", "class"),
		objectsTotal: cameraDesc("detected_objects_total",
			"Objects of each counted class the detector found in the camera's analyzed frames.", "class"),
		frames: cameraDesc("analyzed_frames_total",
			"Frames of the camera run through the object detector."),
		empty: cameraDesc("frames_without_detections_total",
			"Frames of the camera in which the detector found no object of a counted class."),
		inference: cameraDesc("inference_duration_seconds",
			"Time the detector spent on a frame of the camera, not counting the wait for a free network."),
		confidence: cameraDesc("detection_confidence",
			"Confidence of the objects of counted classes the detector found in the camera's frames."),
		info: prometheus.NewDesc(namespace+"_detector_info",
			"The object detector that runs, value 1. backend and target are what really runs, requested_backend what the configuration asked for.",
			[]string{"model", "layout", "input_size", "backend", "target", "requested_backend"}, nil),
	}
}

func (d detectionDescs) infoMetric(det detector.Detector) prometheus.Metric {
	i := det.Info()
	return prometheus.MustNewConstMetric(d.info, prometheus.GaugeValue, 1, i.Model, string(i.Layout),
		fmt.Sprintf("%dx%d", i.InputWidth, i.InputHeight), i.Backend, i.Target, i.Requested)
}

// detections keeps one camera's detection counters across scrapes. They
// count frames, not scrapes: a key frame analyzed twice is detected once.
type detections struct {
	detector detector.Detector // the detector whose results are counted

	mu           sync.Mutex // guards the fields below
	seq          uint64     // the frame detected last
	last         *found
	objectsTotal map[string]uint64
	frames       uint64
	empty        uint64
	inference    histogram
	confidence   histogram
}

func newDetections(det detector.Detector, classes []string) *detections {
	d := &detections{
		detector:     det,
		objectsTotal: make(map[string]uint64, len(classes)),
		inference:    newHistogram(inferenceBuckets),
		confidence:   newHistogram(confidenceBuckets),
	}
	// Counted classes exist from the start, so that rate() sees the first one.
	for _, class := range classes {
		d.objectsTotal[class] = 0
	}
	return d
}

// found is what the detector found in a frame, of the counted classes.
type found struct {
	objects     map[string]int // per class
	confidences []float32
	detections  []detector.Detection // of the counted classes
}

// detect runs a camera's frame through the detector, unless it is the frame
// detected last, and returns what it found of the counted classes.
func (d *detections) detect(cfg config.Camera, frame camera.Frame) (*found, error) {
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
func (d *detections) record(seq uint64, res detector.Result, classes []string) *found {
	f := &found{objects: make(map[string]int, len(classes))}
	for _, class := range classes {
		f.objects[class] = 0
	}
	for _, det := range res.Detections {
		if len(classes) > 0 && !slices.Contains(classes, det.Label) {
			continue
		}
		f.objects[det.Label]++
		f.confidences = append(f.confidences, det.Confidence)
		f.detections = append(f.detections, det)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range f.confidences {
		d.confidence.observe(float64(c))
	}
	for class, n := range f.objects {
		d.objectsTotal[class] += uint64(n)
	}
	d.frames++
	if len(f.confidences) == 0 {
		d.empty++
	}
	d.inference.observe(res.Duration.Seconds())
	d.seq, d.last = seq, f
	return f
}

// collect sends the camera's counters, and the objects in its latest frame
// if it was analyzed in this scrape.
func (d *detections) collect(ch chan<- prometheus.Metric, descs detectionDescs, name string, f *found) {
	if f != nil {
		for _, class := range sortedKeys(f.objects) {
			ch <- prometheus.MustNewConstMetric(descs.objects, prometheus.GaugeValue, float64(f.objects[class]), name, class)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, class := range sortedKeys(d.objectsTotal) {
		ch <- prometheus.MustNewConstMetric(descs.objectsTotal, prometheus.CounterValue, float64(d.objectsTotal[class]), name, class)
	}
	ch <- prometheus.MustNewConstMetric(descs.frames, prometheus.CounterValue, float64(d.frames), name)
	ch <- prometheus.MustNewConstMetric(descs.empty, prometheus.CounterValue, float64(d.empty), name)
	ch <- d.inference.metric(descs.inference, name)
	ch <- d.confidence.metric(descs.confidence, name)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// histogram is the state of a const histogram metric.
type histogram struct {
	bounds []float64
	counts []uint64 // per bucket, not cumulative
	count  uint64
	sum    float64
}

func newHistogram(bounds []float64) histogram {
	return histogram{bounds: bounds, counts: make([]uint64, len(bounds))}
}

func (h *histogram) observe(v float64) {
	if i := sort.SearchFloat64s(h.bounds, v); i < len(h.bounds) {
		h.counts[i]++
	}
	h.count++
	h.sum += v
}

func (h *histogram) metric(desc *prometheus.Desc, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.bounds))
	var cumulative uint64
	for i, bound := range h.bounds {
		cumulative += h.counts[i]
		buckets[bound] = cumulative
	}
	return prometheus.MustNewConstHistogram(desc, h.count, h.sum, buckets, labels...)
}
