package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/detector"
)

// stubDetector stands in for the OpenCV detector, which detector/dnn and
// the end-to-end test run with real models: these tests are about what
// the collector makes of detections.
type stubDetector struct {
	result detector.Result
	err    error
	calls  atomic.Int64
}

func (d *stubDetector) Place(srcW, srcH int) detector.Placement {
	return detector.Place(detector.ResizeLetterbox, srcW, srcH, 32, 32)
}

func (d *stubDetector) Detect(_ context.Context, pic detector.Image, srcW, srcH int) (detector.Result, error) {
	d.calls.Add(1)
	if p := d.Place(srcW, srcH); pic.Width != p.Width || pic.Height != p.Height {
		return detector.Result{}, fmt.Errorf("picture %dx%d, placed %dx%d", pic.Width, pic.Height, p.Width, p.Height)
	}
	return d.result, d.err
}

func (d *stubDetector) Labels() []string { return []string{"person", "car", "dog"} }

func (d *stubDetector) Info() detector.Info {
	return detector.Info{Model: "stub.onnx", Layout: detector.LayoutYOLOv8, Backend: "opencv", Target: "cpu",
		Requested: "cuda", InputWidth: 32, InputHeight: 32}
}

func (d *stubDetector) Close() {}

// applyWithDetector puts the cameras in force with a detector block, which
// f's managers load as f.detector.
func (f *fixture) applyWithDetector(t *testing.T, cameras ...config.Camera) {
	t.Helper()
	dir := t.TempDir()
	model, labels := filepath.Join(dir, "stub.onnx"), filepath.Join(dir, "stub.names")
	if err := os.WriteFile(model, []byte("not loaded"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(labels, []byte("person\ncar\ndog\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(fmt.Sprintf("detector:\n  model: %s\n  labels: %s\n  input_size: 32\n", model, labels)))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Cameras = cameras
	if err := f.manager.Apply(cfg); err != nil {
		t.Fatal(err)
	}
}

func detection(label string, confidence float32) detector.Detection {
	return detector.Detection{Label: label, Confidence: confidence, Box: detector.Box{Width: 10, Height: 10}}
}

func TestDetectionMetrics(t *testing.T) {
	f := newFixture(t, "gate", "yard", "lobby")
	f.detector = &stubDetector{result: detector.Result{
		Detections: []detector.Detection{detection("person", 0.92), detection("dog", 0.5), detection("person", 0.61)},
		Duration:   30 * time.Millisecond,
	}}
	f.applyWithDetector(t,
		f.camera(t, "gate", "    detect:\n      classes: [person, car]\n"),
		f.camera(t, "yard", ""), // counts every class
		f.camera(t, "lobby", "    detect:\n      enabled: false\n"),
	)
	waitAllUp(t, f.manager)
	cc, err := NewCameraCollector(f.manager, discard, "image")
	if err != nil {
		t.Fatal(err)
	}
	got := scrapeText(t, context.Background(), cc)
	wantLines(t, got,
		`camera_detector_info{backend="opencv",input_size="32x32",layout="yolov8",model="stub.onnx",requested_backend="cuda",target="cpu"} 1`,
		`camera_detected_objects{camera="gate",class="car"} 0`,
		`camera_detected_objects{camera="gate",class="person"} 2`,
		`camera_detected_objects{camera="yard",class="dog"} 1`,
		`camera_detected_objects{camera="yard",class="person"} 2`,
		`camera_detected_objects_total{camera="gate",class="car"} 0`,
		`camera_detected_objects_total{camera="gate",class="person"} 2`,
		`camera_detected_objects_total{camera="yard",class="dog"} 1`,
		`camera_analyzed_frames_total{camera="gate"} 1`,
		`camera_frames_without_detections_total{camera="gate"} 0`,
		`camera_inference_duration_seconds_bucket{camera="gate",le="0.02"} 0`,
		`camera_inference_duration_seconds_bucket{camera="gate",le="0.05"} 1`,
		`camera_inference_duration_seconds_sum{camera="gate"} 0.03`,
		`camera_inference_duration_seconds_count{camera="gate"} 1`,
		// The dog is not counted on gate, so not in its confidences.
		`camera_detection_confidence_bucket{camera="gate",le="0.6"} 0`,
		`camera_detection_confidence_bucket{camera="gate",le="0.7"} 1`,
		`camera_detection_confidence_bucket{camera="gate",le="0.95"} 2`,
		`camera_detection_confidence_count{camera="gate"} 2`,
		`camera_detection_confidence_count{camera="yard"} 3`,
		`camera_frame_analysis_success{camera="lobby"} 1`,
	)
	for _, unwanted := range []string{`camera="gate",class="dog"`, `camera_detected_objects{camera="lobby"`, `camera_analyzed_frames_total{camera="lobby"}`} {
		if strings.Contains(got, unwanted) {
			t.Errorf("unexpected %s in:\n%s", unwanted, got)
		}
	}
	if n := f.detector.calls.Load(); n != 2 {
		t.Errorf("detector ran %d times, want once per detecting camera", n)
	}

	// A scrape within the min interval shares the analysis: frames are
	// counted once however often they are scraped.
	got = scrapeText(t, context.Background(), cc, "camera_analyzed_frames_total")
	if !strings.Contains(got, `camera_analyzed_frames_total{camera="gate"} 1`+"\n") {
		t.Errorf("second scrape counted the frame again:\n%s", got)
	}
}

// scrapePersonCamera scrapes the image collector once, for a camera that
// counts persons with det.
func scrapePersonCamera(t *testing.T, det *stubDetector) string {
	t.Helper()
	f := newFixture(t, "gate")
	f.detector = det
	f.applyWithDetector(t, f.camera(t, "gate", "    detect:\n      classes: [person]\n"))
	waitAllUp(t, f.manager)
	cc, err := NewCameraCollector(f.manager, discard, "image")
	if err != nil {
		t.Fatal(err)
	}
	return scrapeText(t, context.Background(), cc)
}

func TestFramesWithoutDetections(t *testing.T) {
	got := scrapePersonCamera(t, &stubDetector{result: detector.Result{Detections: []detector.Detection{detection("dog", 0.9)}}})
	wantLines(t, got,
		`camera_detected_objects{camera="gate",class="person"} 0`,
		`camera_analyzed_frames_total{camera="gate"} 1`,
		// A dog is nothing to a camera that counts persons.
		`camera_frames_without_detections_total{camera="gate"} 1`,
		`camera_detection_confidence_count{camera="gate"} 0`,
	)
}

func TestDetectionFailure(t *testing.T) {
	got := scrapePersonCamera(t, &stubDetector{err: errors.New("forward pass failed")})
	wantLines(t, got,
		`camera_frame_analysis_success{camera="gate"} 0`,
		// The image statistics of the frame are still good.
		`camera_frame_brightness_ratio{camera="gate"} 0.5`,
		`camera_analyzed_frames_total{camera="gate"} 0`,
		`camera_detected_objects_total{camera="gate",class="person"} 0`,
		`camera_scrape_collector_success{collector="image"} 1`,
	)
	if strings.Contains(got, "camera_detected_objects{") {
		t.Errorf("a failed detection reported objects:\n%s", got)
	}
}

func TestDetectionMetricsFollowNamingConventions(t *testing.T) {
	f := newFixture(t, "gate")
	f.detector = &stubDetector{result: detector.Result{Detections: []detector.Detection{detection("person", 0.9)}}}
	f.applyWithDetector(t, f.camera(t, "gate", ""))
	waitAllUp(t, f.manager)
	lint(t, f.manager)
}

// TestEventsAreLoggedOnce checks that a failing detector and a dark picture
// are logged when they start, with the camera's name, and not again on the
// next scrape.
func TestEventsAreLoggedOnce(t *testing.T) {
	f := newFixture(t, "gate")
	f.detector = &stubDetector{err: errors.New("forward pass failed")}
	// The stub decoder reports the dark threshold as the dark ratio.
	f.applyWithDetector(t, f.camera(t, "gate", "    dark_threshold: 0.9\n"))
	waitAllUp(t, f.manager)
	var logs syncBuffer
	cc, err := NewCameraCollector(f.manager, slog.New(slog.NewTextHandler(&logs, nil)), "image")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		scrapeText(t, context.Background(), cc)
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

// syncBuffer collects log output written from analysis goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
