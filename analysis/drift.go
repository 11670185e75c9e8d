package analysis

import (
	"errors"
	"io/fs"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/drift"
	"github.com/camera-exporter/camera_exporter/imagestats"
	"github.com/camera-exporter/camera_exporter/reference"
)

// distributionBuckets are the buckets of the statistics' distributions.
var distributionBuckets = []float64{0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95}

// Drift is what a camera's distinct analyzed pictures tell of its drift,
// frozen pictures and view.
type Drift struct {
	// Distributions are those of the pictures' statistics, so that
	// dashboards can show the input distribution over any window.
	Distributions Distributions
	// Difference is how much the latest picture differs from the most
	// similar of the pictures before it, as drift.CompareStill's
	// Difference; HasDifference is false before two pictures or without
	// signatures.
	Difference    float64
	HasDifference bool
	// Frozen tells a stream that repeats one picture while frames keep
	// arriving; HasFrozen is false before the first picture.
	Frozen, HasFrozen bool
	// Learns tells a camera with a reference file, which it learns while
	// Calibrating when the file does not exist.
	Learns, Calibrating bool
	// Reference is the camera's reference profile, nil without one;
	// shared, not to be modified.
	Reference *drift.Profile
	// Scene is drift.SceneChange's score of the latest picture against
	// the reference, where HasScene.
	Scene    float64
	HasScene bool
	// View is how the latest picture registers against the reference's
	// view, where HasView.
	View    drift.Registration
	HasView bool
	// Scores holds the drift scores by feature against the reference, nil
	// without them; Combined is their combination.
	Scores   map[string]float64
	Combined float64
}

// Distributions hold the distributions of the statistics of a camera's
// distinct analyzed pictures.
type Distributions struct {
	Brightness, Contrast, DarkPixels, OverexposedPixels, EdgeDensity, Saturation Histogram
}

func newDistributions() Distributions {
	h := func() Histogram { return newHistogram(distributionBuckets) }
	return Distributions{h(), h(), h(), h(), h(), h()}
}

func (d *Distributions) observe(s imagestats.Stats) {
	d.Brightness.observe(s.Brightness)
	d.Contrast.observe(s.Contrast)
	d.DarkPixels.observe(s.DarkRatio)
	d.OverexposedPixels.observe(s.OverexposedRatio)
	d.EdgeDensity.observe(s.EdgeDensity)
	d.Saturation.observe(s.Saturation)
}

func (d Distributions) clone() Distributions {
	return Distributions{d.Brightness.clone(), d.Contrast.clone(), d.DarkPixels.clone(),
		d.OverexposedPixels.clone(), d.EdgeDensity.clone(), d.Saturation.clone()}
}

// driftState follows one camera's distinct analyzed frames: whether they
// repeat, how they compare with the camera's reference, and the
// distributions of their statistics. It learns the camera's reference
// where there is none, and saves it.
type driftState struct {
	logger      *slog.Logger
	calibration time.Duration

	mu             sync.Mutex      // guards the fields below
	file           *reference.File // nil without a reference directory
	ref            *drift.Profile
	builder        *drift.Builder // while calibrating
	calibrateUntil time.Time
	recent         *drift.Window
	frozen         frozenDetector
	scene          float64
	hasScene       bool
	view           *drift.View // of ref, once a frame gave it a size
	viewErr        error       // why ref's view cannot be registered against
	registration   drift.Registration
	registered     bool
	scores         map[string]float64
	combined       float64
	distributions  Distributions
}

func newDriftState(cfg config.Camera, logger *slog.Logger) *driftState {
	window := time.Duration(cfg.Reference.Window)
	d := &driftState{
		logger:      logger,
		calibration: time.Duration(cfg.Reference.Calibration),
		// A sample per second at most, far more than scrapes give.
		recent:        drift.NewWindow(window, int(window/time.Second)+1),
		distributions: newDistributions(),
	}
	if path := cfg.ReferenceFile(); path != "" {
		d.file = reference.NewFile(path)
	}
	d.frozen.overlay.configure(cfg.FrozenOverlay)
	// A saved reference shows at once, before the camera's first frame.
	d.refresh(time.Now())
	return d
}

// observe takes a camera's analyzed frame, once per distinct frame, with
// what the detector found in it (nil when the camera does not detect or
// detection failed).
func (d *driftState) observe(now time.Time, frame camera.Frame, f *Found) {
	d.mu.Lock()
	defer d.mu.Unlock()
	stats := frame.Stats
	if !d.frozen.observe(now, frame.Seq, frame.Coded, frame.Key, stats.Signature) {
		return
	}
	d.distributions.observe(stats)

	sample := drift.Sample{Stats: stats, Detected: f != nil}
	if f != nil {
		sample.Objects, sample.Confidences = f.Objects, f.Confidences
	}
	d.refresh(now)
	if d.builder != nil {
		d.builder.Add(sample)
		d.finishCalibration(now)
	}
	d.recent.Add(now, sample)
	if d.ref == nil {
		return
	}
	d.scene, d.hasScene = drift.SceneChange(d.ref.Signature, stats.Signature)
	d.register(stats)
	var ok bool
	if d.scores, d.combined, ok = d.recent.Scores(d.ref, now); !ok {
		d.scores = nil
	}
}

// refresh loads the reference when its file appeared or was replaced, as
// by `camera_exporter reference build`, or starts learning one. Needs mu.
func (d *driftState) refresh(now time.Time) {
	if d.file == nil {
		return
	}
	ref, err := d.file.Changed()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if d.ref == nil && d.builder == nil && d.calibration > 0 {
			d.builder = drift.NewBuilder(true)
			d.calibrateUntil = now.Add(d.calibration)
			d.logger.Info("Learning the camera's reference", "until", d.calibrateUntil.Format(time.RFC3339), "file", d.file.Path())
		}
	case err != nil:
		d.logger.Warn("Cannot load the camera's reference", "err", err)
	case ref != nil:
		d.setReference(ref)
		d.builder = nil
		d.logger.Info("Loaded the camera's reference", "file", d.file.Path(), "frames", ref.Frames, "source", ref.Source, "view", ref.HasView())
	}
}

// setReference makes ref the camera's reference; its view is prepared at
// the next frame, whose size a reference of an older version lacks. Needs
// mu.
func (d *driftState) setReference(ref *drift.Profile) {
	d.ref, d.view, d.viewErr, d.registered = ref, nil, nil, false
}

// register measures how far the frame's view moved from the reference's.
// Needs mu.
func (d *driftState) register(stats imagestats.Stats) {
	d.registered = false
	if !d.ref.HasView() || d.viewErr != nil {
		return
	}
	if d.view == nil {
		w, h := d.ref.Width, d.ref.Height
		if w == 0 {
			w, h = stats.Width, stats.Height
		}
		if d.view, d.viewErr = drift.NewView(d.ref.Signature, w, h); d.viewErr != nil {
			d.logger.Warn("Cannot register frames against the camera's reference view", "err", d.viewErr)
			return
		}
	}
	d.registration, d.registered = d.view.Register(stats.Signature, stats.Width, stats.Height)
}

// finishCalibration saves the learned reference once the calibration
// window is over and enough frames came. Needs mu.
func (d *driftState) finishCalibration(now time.Time) {
	if now.Before(d.calibrateUntil) || d.builder.Frames() < drift.MinSamples {
		return
	}
	ref := d.builder.Profile("calibration", now)
	d.builder = nil
	d.setReference(ref)
	if err := d.file.Save(ref); err != nil {
		d.logger.Warn("Cannot save the learned reference; it is used until the exporter stops", "err", err)
		return
	}
	d.logger.Info("Learned the camera's reference", "file", d.file.Path(), "frames", ref.Frames)
}

// copy returns what the camera's state tells now.
func (d *driftState) copy() *Drift {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := &Drift{
		Distributions: d.distributions.clone(),
		Learns:        d.file != nil,
		Calibrating:   d.builder != nil,
		Reference:     d.ref,
	}
	c.Difference, c.HasDifference = d.frozen.difference()
	c.Frozen, c.HasFrozen = d.frozen.frozen()
	if d.ref == nil {
		return c
	}
	c.Scene, c.HasScene = d.scene, d.hasScene
	c.View, c.HasView = d.registration, d.registered
	c.Scores, c.Combined = maps.Clone(d.scores), d.combined
	return c
}
