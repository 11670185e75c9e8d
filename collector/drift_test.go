package collector

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	promModel "github.com/prometheus/common/model"

	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/drift"
	"github.com/camera-exporter/camera_exporter/imagestats"
)

// signature is a picture signature of one gray level with a gradient, so
// that it has a scene to compare.
func signature(level int) []uint8 {
	sig := make([]uint8, imagestats.SignatureWidth*imagestats.SignatureHeight)
	for i := range sig {
		sig[i] = uint8(level + i%imagestats.SignatureWidth/4)
	}
	return sig
}

// compareDrift compares what d exports at now with want, for the families
// named.
func compareDrift(t *testing.T, d *driftState, descs driftDescs, now time.Time, want string, names ...string) {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectorFunc(func(ch chan<- prometheus.Metric) { d.collect(ch, descs, "gate", now) }))
	compareGathered(t, reg, want, names...)
}

// collectorFunc sends the metrics of one collect call, unchecked.
type collectorFunc func(chan<- prometheus.Metric)

func (f collectorFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }
func (f collectorFunc) Describe(chan<- *prometheus.Desc)    {}

func TestFrozenCamera(t *testing.T) {
	descs := newDriftDescs()
	d := newDriftState(config.Camera{}, discard, descs)
	now := time.Now()
	observe := func(seq uint64, level int) {
		d.observe(now, seq, 0, imagestats.Stats{Brightness: 0.5, Signature: signature(level)}, nil, descs)
	}
	for _, step := range []struct {
		seq    uint64
		level  int
		frozen string
	}{
		{1, 100, "0"},
		{2, 100, "0"}, // a still scene may repeat itself once
		{2, 100, "0"}, // the same frame analyzed again is no repeat
		{3, 100, "1"},
		{4, 120, "0"},
	} {
		observe(step.seq, step.level)
		compareDrift(t, d, descs, now, "# TYPE camera_frame_frozen gauge\ncamera_frame_frozen{camera=\"gate\"} "+step.frozen+"\n",
			"camera_frame_frozen")
	}
	// Distinct frames are counted once each: 4, all of brightness 0.5.
	compareDrift(t, d, descs, now, `
# TYPE camera_frame_brightness_distribution_ratio histogram
camera_frame_brightness_distribution_ratio_bucket{camera="gate",le="0.05"} 0
camera_frame_brightness_distribution_ratio_bucket{camera="gate",le="0.1"} 0
camera_frame_brightness_distribution_ratio_bucket{camera="gate",le="0.2"} 0
camera_frame_brightness_distribution_ratio_bucket{camera="gate",le="0.3"} 0
camera_frame_brightness_distribution_ratio_bucket{camera="gate",le="0.4"} 0
camera_frame_brightness_distribution_ratio_bucket{camera="gate",le="0.5"} 4
camera_frame_brightness_distribution_ratio_bucket{camera="gate",le="0.6"} 4
camera_frame_brightness_distribution_ratio_bucket{camera="gate",le="0.7"} 4
camera_frame_brightness_distribution_ratio_bucket{camera="gate",le="0.8"} 4
camera_frame_brightness_distribution_ratio_bucket{camera="gate",le="0.9"} 4
camera_frame_brightness_distribution_ratio_bucket{camera="gate",le="0.95"} 4
camera_frame_brightness_distribution_ratio_bucket{camera="gate",le="+Inf"} 4
camera_frame_brightness_distribution_ratio_sum{camera="gate"} 2
camera_frame_brightness_distribution_ratio_count{camera="gate"} 4
`, "camera_frame_brightness_distribution_ratio")
}

// TestCalibratedReferenceSurvivesRestart learns a reference online, then
// checks that a new state, as after a restart, loads it.
func TestCalibratedReferenceSurvivesRestart(t *testing.T) {
	descs := newDriftDescs()
	cfg := config.Camera{Name: "gate", CameraOptions: config.CameraOptions{Reference: config.ReferenceOptions{
		Dir: t.TempDir(), Calibration: promModel.Duration(time.Second), Window: promModel.Duration(time.Hour),
	}}}
	d := newDriftState(cfg, discard, descs)
	start := time.Now()
	for i := range 2 * drift.MinSamples {
		now := start.Add(time.Duration(i) * 100 * time.Millisecond)
		d.observe(now, uint64(i+1), 0, imagestats.Stats{Brightness: 0.5 + float64(i%3)/100, Signature: signature(100 + i%2)}, nil, descs)
	}
	if _, err := os.Stat(filepath.Join(cfg.Reference.Dir, "gate.json")); err != nil {
		t.Fatalf("the learned reference was not saved: %v", err)
	}
	const learned = `
# TYPE camera_reference_calibrating gauge
camera_reference_calibrating{camera="gate"} 0
# TYPE camera_reference_frames gauge
camera_reference_frames{camera="gate"} 60
`
	later := start.Add(20 * time.Second)
	compareDrift(t, d, descs, later, learned, "camera_reference_calibrating", "camera_reference_frames")
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectorFunc(func(ch chan<- prometheus.Metric) { d.collect(ch, descs, "gate", later) }))
	if n, err := testutil.GatherAndCount(reg, "camera_drift_combined_score", "camera_scene_change_score"); err != nil || n != 2 {
		t.Errorf("%d drift and scene scores (err %v), want one each once the reference is learned", n, err)
	}

	restarted := newDriftState(cfg, discard, descs)
	compareDrift(t, restarted, descs, time.Now(), learned, "camera_reference_calibrating", "camera_reference_frames")
}
