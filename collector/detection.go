package collector

import (
	"fmt"
	"maps"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
)

func init() {
	registerCollector("detection", true, true, newDetectionCollector)
}

// detectionCollector reports the detector, and what it found in each
// detecting camera's pictures. Without it, no inference runs.
type detectionCollector struct {
	objects, objectsTotal, frames, empty, inference, confidence, info *prometheus.Desc
}

func newDetectionCollector() Collector {
	return &detectionCollector{
		objects: cameraDesc("camera_detected_objects",
			"Objects of each counted class the detector found in the camera's latest analyzed frame.", "class"),
		objectsTotal: cameraDesc("camera_detected_objects_total",
			"Objects of each counted class the detector found in the camera's analyzed frames.", "class"),
		frames: cameraDesc("camera_analyzed_frames_total",
			"Frames of the camera run through the object detector."),
		empty: cameraDesc("camera_frames_without_detections_total",
			"Frames of the camera in which the detector found no object of a counted class."),
		inference: cameraDesc("camera_inference_duration_seconds",
			"Time the detector spent on a frame of the camera, not counting the wait for a free network."),
		confidence: cameraDesc("camera_detection_confidence",
			"Confidence of the objects of counted classes the detector found in the camera's frames."),
		info: prometheus.NewDesc("camera_detector_info",
			"The object detector that runs, value 1: backend and target are what really runs, requested_backend what the configuration asked for.",
			[]string{"model", "layout", "input_size", "backend", "target", "requested_backend"}, nil),
	}
}

// Update fails when the detector failed on every camera it ran on. A
// single camera's failure is camera_frame_analysis_success 0.
func (c *detectionCollector) Update(scrape *Scrape, ch chan<- prometheus.Metric) error {
	round := scrape.Round()
	if det := round.Detector; det != nil {
		i := det.Info()
		ch <- gauge(c.info, 1, i.Model, string(i.Layout), fmt.Sprintf("%dx%d", i.InputWidth, i.InputHeight),
			i.Backend, i.Target, i.Requested)
	}
	for _, sc := range round.Cameras {
		d := sc.Detection
		if d == nil {
			continue
		}
		// The objects of the frame this scrape analyzed, if it did.
		if sc.Analysis.Succeeded() && sc.Analysis.Found != nil {
			found := sc.Analysis.Found
			for _, class := range slices.Sorted(maps.Keys(found.Objects)) {
				ch <- gauge(c.objects, float64(found.Objects[class]), sc.Name, class)
			}
		}
		for _, class := range slices.Sorted(maps.Keys(d.Objects)) {
			ch <- counter(c.objectsTotal, float64(d.Objects[class]), sc.Name, class)
		}
		ch <- counter(c.frames, float64(d.Frames), sc.Name)
		ch <- counter(c.empty, float64(d.Empty), sc.Name)
		ch <- histogram(c.inference, d.Inference, sc.Name)
		ch <- histogram(c.confidence, d.Confidence, sc.Name)
	}
	if t := round.Tally(); t.Detected == 0 && t.Missed > 0 {
		return fmt.Errorf("the detector failed on all %d cameras it ran on", t.Missed)
	}
	return nil
}
