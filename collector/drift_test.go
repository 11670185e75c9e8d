package collector

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
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

func driftMetrics(t *testing.T, d *driftState, descs driftDescs, now time.Time) string {
	t.Helper()
	ch := make(chan prometheus.Metric, 100)
	d.collect(ch, descs, "gate", now)
	close(ch)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectorFunc(func(out chan<- prometheus.Metric) {
		for m := range ch {
			out <- m
		}
	}))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range families {
		expfmt.MetricFamilyToText(&b, mf) //nolint:errcheck // a strings.Builder
	}
	return b.String()
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
		d.observe(now, seq, imagestats.Stats{Brightness: 0.5, Signature: signature(level)}, nil, descs)
	}
	for _, step := range []struct {
		seq    uint64
		level  int
		frozen bool
	}{
		{1, 100, false},
		{2, 100, false}, // a still scene may repeat itself once
		{2, 100, false}, // the same frame analyzed again is no repeat
		{3, 100, true},
		{4, 120, false},
	} {
		observe(step.seq, step.level)
		got := driftMetrics(t, d, descs, now)
		want := fmt.Sprintf("camera_frame_frozen{camera=\"gate\"} %d\n", map[bool]int{false: 0, true: 1}[step.frozen])
		if !strings.Contains(got, want) {
			t.Errorf("after frame %d: missing %s in:\n%s", step.seq, want, got)
		}
	}
	if got := driftMetrics(t, d, descs, now); !strings.Contains(got, `camera_frame_brightness_distribution_ratio_count{camera="gate"} 4`) {
		t.Errorf("distinct frames not counted once each:\n%s", got)
	}
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
		d.observe(now, uint64(i+1), imagestats.Stats{Brightness: 0.5 + float64(i%3)/100, Signature: signature(100 + i%2)}, nil, descs)
	}
	if _, err := os.Stat(filepath.Join(cfg.Reference.Dir, "gate.json")); err != nil {
		t.Fatalf("the learned reference was not saved: %v", err)
	}
	got := driftMetrics(t, d, descs, start.Add(20*time.Second))
	for _, want := range []string{`camera_reference_calibrating{camera="gate"} 0`, `camera_drift_combined_score{camera="gate"}`, `camera_scene_change_score{camera="gate"}`} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %s in:\n%s", want, got)
		}
	}

	restarted := newDriftState(cfg, discard, descs)
	got = driftMetrics(t, restarted, descs, time.Now())
	for _, want := range []string{`camera_reference_calibrating{camera="gate"} 0`, `camera_reference_frames{camera="gate"}`} {
		if !strings.Contains(got, want) {
			t.Errorf("after a restart, missing %s in:\n%s", want, got)
		}
	}
}
