package analysis

import (
	"context"
	"errors"
	"testing"
	"time"

	promModel "github.com/prometheus/common/model"

	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/detector"
	"github.com/camera-exporter/camera_exporter/video"
)

// TestLookLatestOutcome checks that the latest attempt's outcome is the one
// the pages see, whatever the order in which outcomes and scrapes'
// deadlines come.
func TestLookLatestOutcome(t *testing.T) {
	now := time.Now()
	running := func() *attempt { return &attempt{done: make(chan struct{})} }
	first, second, third := running(), running(), running()
	var l lookState
	failed := func(want string) {
		t.Helper()
		var look Look
		l.fill(&look)
		if look.Err != want || look.Failed.IsZero() != (want == "") {
			t.Errorf("failed %v: %q, want %q", look.Failed, look.Err, want)
		}
	}
	l.fail(now, first, errors.New("decoding: invalid data"))
	close(first.done)
	failed("decoding: invalid data")
	// A scrape's deadline passes as the analysis finishes: it finished.
	l.observe(now, second, camera.Frame{Seq: 1})
	l.cutOff(now, second)
	failed("")
	close(second.done)
	l.cutOff(now, second)
	failed("")
	// Cut off by two scrapes, then done.
	l.cutOff(now, third)
	failed("analysis still running at the scrape's deadline")
	l.cutOff(now.Add(time.Minute), third)
	var look Look
	if l.fill(&look); !look.Failed.Equal(now.Add(time.Minute)) {
		t.Errorf("failed %v, want at the latest deadline", look.Failed)
	}
	third.outcome.DetectErr = errors.New("detecting objects: forward pass failed")
	l.observe(now, third, camera.Frame{Seq: 2})
	close(third.done)
	failed("detecting objects: forward pass failed")
	// A new session's first key frame not arrived yet.
	l.fail(now, running(), video.ErrNoPicture)
	failed("")
}

// countingDetector finds one person in every picture, and counts its runs.
type countingDetector struct{ calls int }

func (d *countingDetector) Place(srcW, srcH int) detector.Placement {
	return detector.Place(detector.ResizeLetterbox, srcW, srcH, 32, 32)
}

func (d *countingDetector) Detect(context.Context, video.Image, int, int) (detector.Result, error) {
	d.calls++
	return detector.Result{Detections: []detector.Detection{{Label: "person", Confidence: 0.75}}}, nil
}

func (d *countingDetector) Labels() []string    { return []string{"person"} }
func (d *countingDetector) Info() detector.Info { return detector.Info{} }
func (d *countingDetector) Close()              {}

// TestDetectionCountsFramesNotAnalyses checks that a picture analyzed
// again, as a key frame not yet followed by another, is detected once.
func TestDetectionCountsFramesNotAnalyses(t *testing.T) {
	det := &countingDetector{}
	cfg := config.Camera{Name: "gate", CameraOptions: config.CameraOptions{Timeout: promModel.Duration(time.Second)}}
	cfg.Detect.Classes = []string{"person"}
	d := newDetections(det, cfg.Detect.Classes)
	frame := camera.Frame{Seq: 1}
	for range 3 {
		if _, err := d.detect(cfg, frame); err != nil {
			t.Fatal(err)
		}
	}
	if c := d.copy(); det.calls != 1 || c.Frames != 1 || c.Objects["person"] != 1 {
		t.Errorf("detected %d times, counted %d frames and %d persons; want 1 each", det.calls, c.Frames, c.Objects["person"])
	}
}
