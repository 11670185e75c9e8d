package analysis

import (
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	promModel "github.com/prometheus/common/model"

	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/drift"
	"github.com/camera-exporter/camera_exporter/imagestats"
)

var discard = slog.New(slog.DiscardHandler)

// signature is a picture signature of one gray level with a gradient, so
// that it has a scene to compare.
func signature(level int) []uint8 {
	sig := make([]uint8, imagestats.SignatureWidth*imagestats.SignatureHeight)
	for i := range sig {
		sig[i] = uint8(level + i%imagestats.SignatureWidth/4)
	}
	return sig
}

func TestFrozenCamera(t *testing.T) {
	d := newDriftState(config.Camera{}, discard)
	now := time.Now()
	observe := func(seq uint64, level int) {
		d.observe(now, camera.Frame{Seq: seq, Key: true, Stats: imagestats.Stats{Brightness: 0.5, Signature: signature(level)}}, nil)
	}
	for i, step := range []struct {
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
		if got := d.copy(); !got.HasFrozen || got.Frozen != step.frozen {
			t.Errorf("step %d: frozen %v (known %v), want %v", i, got.Frozen, got.HasFrozen, step.frozen)
		}
	}
	// Distinct frames are counted once each: 4, all of brightness 0.5.
	want := Histogram{Bounds: distributionBuckets, Counts: []uint64{0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0}, Count: 4, Sum: 2}
	if got := d.copy().Distributions.Brightness; !reflect.DeepEqual(got, want) {
		t.Errorf("brightness distribution %+v, want %+v", got, want)
	}
}

// TestCalibratedReferenceSurvivesRestart learns a reference online, then
// checks that a new state, as after a restart, loads it.
func TestCalibratedReferenceSurvivesRestart(t *testing.T) {
	cfg := config.Camera{Name: "gate", CameraOptions: config.CameraOptions{Reference: config.ReferenceOptions{
		Dir: t.TempDir(), Calibration: promModel.Duration(time.Second), Window: promModel.Duration(time.Hour),
	}}}
	d := newDriftState(cfg, discard)
	if got := d.copy(); !got.Learns || !got.Calibrating {
		t.Fatalf("learns %v, calibrating %v before any frame, want both", got.Learns, got.Calibrating)
	}
	start := time.Now()
	for i := range 2 * drift.MinSamples {
		now := start.Add(time.Duration(i) * 100 * time.Millisecond)
		d.observe(now, camera.Frame{Seq: uint64(i + 1), Key: true, Stats: imagestats.Stats{Brightness: 0.5 + float64(i%3)/100, Signature: signature(100 + i%2)}}, nil)
	}
	if _, err := os.Stat(filepath.Join(cfg.Reference.Dir, "gate.json")); err != nil {
		t.Fatalf("the learned reference was not saved: %v", err)
	}
	learned := func(name string, d *driftState) {
		t.Helper()
		if got := d.copy(); got.Calibrating || got.Reference == nil || got.Reference.Frames != 60 {
			t.Errorf("%s: calibrating %v, reference %+v, want one of 60 frames", name, got.Calibrating, got.Reference)
		}
	}
	learned("learned", d)
	if got := d.copy(); got.Scores == nil || !got.HasScene {
		t.Errorf("drift scores %v, scene known %v, want both once the reference is learned", got.Scores, got.HasScene)
	}
	learned("restarted", newDriftState(cfg, discard))
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

// TestView checks that the view is measured against a reference
// with a view, and absent without one or for a flat picture.
func TestView(t *testing.T) {
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
			d := newDriftState(cfg, discard)
			d.observe(now, camera.Frame{Seq: 1, Key: true, Stats: imagestats.Stats{Width: 1280, Height: 720, Brightness: 0.5, Signature: tc.signature}}, nil)
			got := map[string]float64{}
			if r := d.copy(); r.HasView {
				got = map[string]float64{`axis="x"`: r.View.ShiftX, `axis="y"`: r.View.ShiftY, "scale": r.View.Scale,
					"rotation": r.View.RotationDegrees, "match": r.View.MatchRatio}
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
