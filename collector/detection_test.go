package collector

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/camera-exporter/camera_exporter/detector"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
)

func detection(label string, confidence float32) detector.Detection {
	return detector.Detection{Label: label, Confidence: confidence, Box: detector.Box{Width: 10, Height: 10}}
}

func TestDetectionMetrics(t *testing.T) {
	det := &stubDetector{result: detector.Result{
		Detections: []detector.Detection{detection("person", 0.75), detection("dog", 0.5), detection("person", 0.625)},
		Duration:   30 * time.Millisecond,
	}}
	cams := cameras().set(det,
		newCamera(t, "gate", "    detect:\n      classes: [person, car]\n"),
		newCamera(t, "lobby", "    detect:\n      enabled: false\n"),
		newCamera(t, "yard", ""), // counts every class
	)
	cc := newCollector(t, cams, "image")
	// The dog is not counted on gate, so not in its confidences either.
	const want = `
# TYPE camera_detector_info gauge
camera_detector_info{backend="opencv",input_size="32x32",layout="yolov8",model="stub.onnx",requested_backend="cuda",target="cpu"} 1
# TYPE camera_detected_objects gauge
camera_detected_objects{camera="gate",class="car"} 0
camera_detected_objects{camera="gate",class="person"} 2
camera_detected_objects{camera="yard",class="dog"} 1
camera_detected_objects{camera="yard",class="person"} 2
# TYPE camera_detected_objects_total counter
camera_detected_objects_total{camera="gate",class="car"} 0
camera_detected_objects_total{camera="gate",class="person"} 2
camera_detected_objects_total{camera="yard",class="dog"} 1
camera_detected_objects_total{camera="yard",class="person"} 2
# TYPE camera_analyzed_frames_total counter
camera_analyzed_frames_total{camera="gate"} 1
camera_analyzed_frames_total{camera="yard"} 1
# TYPE camera_frames_without_detections_total counter
camera_frames_without_detections_total{camera="gate"} 0
camera_frames_without_detections_total{camera="yard"} 0
# TYPE camera_inference_duration_seconds histogram
camera_inference_duration_seconds_bucket{camera="gate",le="0.005"} 0
camera_inference_duration_seconds_bucket{camera="gate",le="0.01"} 0
camera_inference_duration_seconds_bucket{camera="gate",le="0.02"} 0
camera_inference_duration_seconds_bucket{camera="gate",le="0.05"} 1
camera_inference_duration_seconds_bucket{camera="gate",le="0.1"} 1
camera_inference_duration_seconds_bucket{camera="gate",le="0.2"} 1
camera_inference_duration_seconds_bucket{camera="gate",le="0.5"} 1
camera_inference_duration_seconds_bucket{camera="gate",le="1"} 1
camera_inference_duration_seconds_bucket{camera="gate",le="2"} 1
camera_inference_duration_seconds_bucket{camera="gate",le="+Inf"} 1
camera_inference_duration_seconds_sum{camera="gate"} 0.03
camera_inference_duration_seconds_count{camera="gate"} 1
camera_inference_duration_seconds_bucket{camera="yard",le="0.005"} 0
camera_inference_duration_seconds_bucket{camera="yard",le="0.01"} 0
camera_inference_duration_seconds_bucket{camera="yard",le="0.02"} 0
camera_inference_duration_seconds_bucket{camera="yard",le="0.05"} 1
camera_inference_duration_seconds_bucket{camera="yard",le="0.1"} 1
camera_inference_duration_seconds_bucket{camera="yard",le="0.2"} 1
camera_inference_duration_seconds_bucket{camera="yard",le="0.5"} 1
camera_inference_duration_seconds_bucket{camera="yard",le="1"} 1
camera_inference_duration_seconds_bucket{camera="yard",le="2"} 1
camera_inference_duration_seconds_bucket{camera="yard",le="+Inf"} 1
camera_inference_duration_seconds_sum{camera="yard"} 0.03
camera_inference_duration_seconds_count{camera="yard"} 1
# TYPE camera_detection_confidence histogram
camera_detection_confidence_bucket{camera="gate",le="0.1"} 0
camera_detection_confidence_bucket{camera="gate",le="0.2"} 0
camera_detection_confidence_bucket{camera="gate",le="0.3"} 0
camera_detection_confidence_bucket{camera="gate",le="0.4"} 0
camera_detection_confidence_bucket{camera="gate",le="0.5"} 0
camera_detection_confidence_bucket{camera="gate",le="0.6"} 0
camera_detection_confidence_bucket{camera="gate",le="0.7"} 1
camera_detection_confidence_bucket{camera="gate",le="0.8"} 2
camera_detection_confidence_bucket{camera="gate",le="0.9"} 2
camera_detection_confidence_bucket{camera="gate",le="0.95"} 2
camera_detection_confidence_bucket{camera="gate",le="+Inf"} 2
camera_detection_confidence_sum{camera="gate"} 1.375
camera_detection_confidence_count{camera="gate"} 2
camera_detection_confidence_bucket{camera="yard",le="0.1"} 0
camera_detection_confidence_bucket{camera="yard",le="0.2"} 0
camera_detection_confidence_bucket{camera="yard",le="0.3"} 0
camera_detection_confidence_bucket{camera="yard",le="0.4"} 0
camera_detection_confidence_bucket{camera="yard",le="0.5"} 1
camera_detection_confidence_bucket{camera="yard",le="0.6"} 1
camera_detection_confidence_bucket{camera="yard",le="0.7"} 2
camera_detection_confidence_bucket{camera="yard",le="0.8"} 3
camera_detection_confidence_bucket{camera="yard",le="0.9"} 3
camera_detection_confidence_bucket{camera="yard",le="0.95"} 3
camera_detection_confidence_bucket{camera="yard",le="+Inf"} 3
camera_detection_confidence_sum{camera="yard"} 1.875
camera_detection_confidence_count{camera="yard"} 3
# TYPE camera_frame_analysis_success gauge
camera_frame_analysis_success{camera="gate"} 1
camera_frame_analysis_success{camera="lobby"} 1
camera_frame_analysis_success{camera="yard"} 1
`
	names := []string{"camera_detector_info", "camera_detected_objects", "camera_detected_objects_total",
		"camera_analyzed_frames_total", "camera_frames_without_detections_total", "camera_inference_duration_seconds",
		"camera_detection_confidence", "camera_frame_analysis_success"}
	compare(t, context.Background(), cc, want, names...)
	if n := det.calls.Load(); n != 2 {
		t.Errorf("detector ran %d times, want once per detecting camera", n)
	}
	// A scrape within the min interval shares the analysis: frames are
	// counted once however often they are scraped.
	compare(t, context.Background(), cc, want, names...)
}

// TestDetectionCountsFramesNotAnalyses checks that a picture analyzed
// again, as a key frame not yet followed by another, is detected once.
func TestDetectionCountsFramesNotAnalyses(t *testing.T) {
	det := &stubDetector{result: detector.Result{Detections: []detector.Detection{detection("person", 0.75)}}}
	cfg := newCamera(t, "gate", "    detect:\n      classes: [person]\n").cfg
	d := newDetections(det, cfg.Detect.Classes)
	gate := newCamera(t, "gate", "")
	frame, err := gate.Analyze(detector.ScaledSize(det))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := d.detect(cfg, frame); err != nil {
			t.Fatal(err)
		}
	}
	if n := det.calls.Load(); n != 1 || d.frames != 1 || d.objectsTotal["person"] != 1 {
		t.Errorf("detected %d times, counted %d frames and %d persons; want 1 each", n, d.frames, d.objectsTotal["person"])
	}
}

// scrapePersonCamera scrapes the image collector once, for a camera that
// counts persons with det, and compares the families named with want.
func scrapePersonCamera(t *testing.T, det *stubDetector, want string, names ...string) {
	t.Helper()
	cams := cameras().set(det, newCamera(t, "gate", "    detect:\n      classes: [person]\n"))
	compare(t, context.Background(), newCollector(t, cams, "image"), want, names...)
}

func TestFramesWithoutDetections(t *testing.T) {
	// A dog is nothing to a camera that counts persons.
	scrapePersonCamera(t, &stubDetector{result: detector.Result{Detections: []detector.Detection{detection("dog", 0.9)}}}, `
# TYPE camera_detected_objects gauge
camera_detected_objects{camera="gate",class="person"} 0
# TYPE camera_analyzed_frames_total counter
camera_analyzed_frames_total{camera="gate"} 1
# TYPE camera_frames_without_detections_total counter
camera_frames_without_detections_total{camera="gate"} 1
`, "camera_detected_objects", "camera_analyzed_frames_total", "camera_frames_without_detections_total")
}

func TestDetectionFailure(t *testing.T) {
	// The image statistics of the frame are still good; no objects are
	// reported, and since the detector failed on every camera it ran on,
	// the collector failed.
	scrapePersonCamera(t, &stubDetector{err: errors.New("forward pass failed")}, `
# TYPE camera_frame_analysis_success gauge
camera_frame_analysis_success{camera="gate"} 0
# TYPE camera_frame_brightness_ratio gauge
camera_frame_brightness_ratio{camera="gate"} 0.5
# TYPE camera_analyzed_frames_total counter
camera_analyzed_frames_total{camera="gate"} 0
# TYPE camera_detected_objects_total counter
camera_detected_objects_total{camera="gate",class="person"} 0
# TYPE camera_scrape_collector_success gauge
camera_scrape_collector_success{collector="image"} 0
`, "camera_frame_analysis_success", "camera_frame_brightness_ratio", "camera_analyzed_frames_total",
		"camera_detected_objects_total", "camera_detected_objects", "camera_scrape_collector_success")
}

// TestEventsAreLoggedOnce checks that a failing detector and a dark picture
// are logged when they start, with the camera's name, and not again on the
// next scrape.
func TestEventsAreLoggedOnce(t *testing.T) {
	// The fake reports the dark threshold as the dark share.
	cams := cameras().set(&stubDetector{err: errors.New("forward pass failed")}, newCamera(t, "gate", "    dark_threshold: 0.9\n"))
	var logs testutil.SyncBuffer
	cc, err := NewCameraCollector(cams, slog.New(slog.NewTextHandler(&logs, nil)), "image")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		compare(t, context.Background(), cc, "", "camera_up")
	}
	for _, want := range []string{
		`level=WARN msg="Object detection failing" collector=image camera=gate err="detecting objects: forward pass failed"`,
		`level=WARN msg="Camera picture dark" collector=image camera=gate dark_pixels_ratio=0.9 brightness_ratio=0.5`,
	} {
		if n := strings.Count(logs.String(), want); n != 1 {
			t.Errorf("logged %d times, want once: %s\n%s", n, want, logs.String())
		}
	}
}
