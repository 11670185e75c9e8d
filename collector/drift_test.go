package collector

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	promModel "github.com/prometheus/common/model"

	"github.com/camera-exporter/camera_exporter/camera"
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
		d.observe(now, camera.Frame{Seq: seq, Key: true, Stats: imagestats.Stats{Brightness: 0.5, Signature: signature(level)}}, nil, descs)
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
		d.observe(now, camera.Frame{Seq: uint64(i + 1), Key: true, Stats: imagestats.Stats{Brightness: 0.5 + float64(i%3)/100, Signature: signature(100 + i%2)}}, nil, descs)
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

// blobs returns a signature of a scene of random blobs, seen moved right by
// dx signature pixels: a view to register.
func blobs(dx float64) []uint8 {
	w, h := imagestats.SignatureWidth, imagestats.SignatureHeight
	rng := rand.New(rand.NewPCG(1, 2))
	type blob struct{ x, y, r, level float64 }
	scene := make([]blob, 60)
	for i := range scene {
		scene[i] = blob{rng.Float64() * float64(w), rng.Float64() * float64(h), 2 + rng.Float64()*6, rng.Float64()*160 - 80}
	}
	sig := make([]uint8, w*h)
	for y := range h {
		for x := range w {
			v := 128.0
			for _, b := range scene {
				ex, ey := float64(x)-dx-b.x, float64(y)-b.y
				v += b.level * math.Exp(-(ex*ex+ey*ey)/(2*b.r*b.r))
			}
			sig[y*w+x] = uint8(min(max(math.Round(v), 0), 255))
		}
	}
	return sig
}

// TestViewMetrics checks that the view is measured against a reference
// with a view, and absent without one or for a flat picture.
func TestViewMetrics(t *testing.T) {
	descs := newDriftDescs()
	now := time.Now()
	scene := blobs(0)
	ref := func(view bool) *drift.Profile {
		b := drift.NewBuilder(view)
		for range drift.MinSamples {
			b.Add(drift.Sample{Stats: imagestats.Stats{Width: 1280, Height: 720, Brightness: 0.5, Signature: scene}})
		}
		return b.Profile("stream:rtsp://gate", now)
	}
	flat := make([]uint8, len(scene))
	for i := range flat {
		flat[i] = 100
	}
	for _, tc := range []struct {
		name      string
		view      bool
		oldFile   bool // a reference of a version that did not record the picture size
		signature []uint8
		want      map[string]float64 // nil: no view metrics
	}{
		{"same view", true, false, scene, map[string]float64{`axis="x"`: 0, `axis="y"`: 0, "scale": 1, "match": 1}},
		// 8 of 160 pixels: the scene moved right by 5% of the picture.
		{"moved", true, false, blobs(8), map[string]float64{`axis="x"`: 0.05, `axis="y"`: 0, "scale": 1}},
		{"moved, older reference", true, true, blobs(8), map[string]float64{`axis="x"`: 0.05, `axis="y"`: 0, "scale": 1}},
		{"flat picture", true, false, flat, nil},
		{"reference without a view", false, false, scene, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := ref(tc.view)
			if tc.oldFile {
				p.Width, p.Height = 0, 0
			}
			if err := p.Save(filepath.Join(dir, "gate.json")); err != nil {
				t.Fatal(err)
			}
			cfg := config.Camera{Name: "gate", CameraOptions: config.CameraOptions{Reference: config.ReferenceOptions{
				Dir: dir, Window: promModel.Duration(time.Hour),
			}}}
			d := newDriftState(cfg, discard, descs)
			d.observe(now, camera.Frame{Seq: 1, Key: true, Stats: imagestats.Stats{Width: 1280, Height: 720, Brightness: 0.5, Signature: tc.signature}}, nil, descs)
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectorFunc(func(ch chan<- prometheus.Metric) { d.collect(ch, descs, "gate", now) }))
			families, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]float64{}
			for _, f := range families {
				for _, m := range f.GetMetric() {
					key := strings.TrimPrefix(f.GetName(), "camera_view_")
					for _, l := range m.GetLabel() {
						if l.GetName() == "axis" {
							key = fmt.Sprintf("axis=%q", l.GetValue())
						}
					}
					if strings.HasPrefix(f.GetName(), "camera_view_") {
						got[strings.TrimSuffix(strings.TrimSuffix(key, "_ratio"), "_degrees")] = m.GetGauge().GetValue()
					}
				}
			}
			if tc.want == nil {
				if len(got) != 0 {
					t.Errorf("view metrics %v, want none", got)
				}
				return
			}
			if len(got) != 5 {
				t.Errorf("view metrics %v, want shift on both axes, scale, rotation and match", got)
			}
			for k, want := range tc.want {
				if math.Abs(got[k]-want) > 0.01 {
					t.Errorf("%s = %.4f, want %.2f within 0.01", k, got[k], want)
				}
			}
		})
	}
}
