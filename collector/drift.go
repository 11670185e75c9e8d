package collector

import (
	"errors"
	"io/fs"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/drift"
	"github.com/camera-exporter/camera_exporter/imagestats"
	"github.com/camera-exporter/camera_exporter/reference"
)

// distributionBuckets are the buckets of the statistics' histograms.
var distributionBuckets = []float64{0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95}

// distribution is a statistic of analyzed frames exported as a histogram,
// so that dashboards can show the input distribution over any window.
type distribution struct {
	desc  *prometheus.Desc
	value func(imagestats.Stats) float64
}

// driftDescs describe the camera health and drift metrics.
type driftDescs struct {
	difference, frozen, scene, score, combined *prometheus.Desc
	shift, scale, rotation, match              *prometheus.Desc
	refAge, refFrames, calibrating             *prometheus.Desc
	distributions                              []distribution
}

func newDriftDescs() driftDescs {
	dist := func(name, help string, value func(imagestats.Stats) float64) distribution {
		return distribution{
			desc:  cameraDesc("frame_"+name+"_distribution_ratio", help+" of the camera's analyzed frames."),
			value: value,
		}
	}
	return driftDescs{
		difference: cameraDesc("frame_difference_ratio",
			"Luma difference, 0 to 1, between the camera's latest distinct analyzed frame and the most similar of the 8 before it (key frames only, where the stream has them), over 8x9 blocks of its 160x90 signature without the tenth that changed most; 0 is the same picture, below 0.00098 (0.25 level) a frozen one."),
		frozen: cameraDesc("frame_frozen",
			"1 if frames still arrive but the camera resends one coded picture, or its latest two distinct analyzed pictures repeat an earlier one within 0.25 level and changed no block but its learned overlay's (a clock or date in the picture's top or bottom fifth), else 0."),
		scene: cameraDesc("scene_change_score",
			"Deprecated: use camera_view_shift_ratio and camera_view_match_ratio. How much the camera's view differs from its reference scene: 0 the same view, about 0.5 an unrelated one."),
		shift: cameraDesc("view_shift_ratio",
			"How far the camera's view moved from its reference view, as a share of the picture's width (axis x, positive: the scene moved right) or height (axis y, positive: the scene moved down).", "axis"),
		scale: cameraDesc("view_scale_ratio",
			"Zoom of the camera's view against its reference view: 1 unchanged, above 1 the scene looks larger."),
		rotation: cameraDesc("view_rotation_degrees",
			"Rotation of the camera's view against its reference view, counterclockwise positive."),
		match: cameraDesc("view_match_ratio",
			"Share of the camera's reference view found in its picture where the view registers: near 1 for the reference's view; a covered lens, an obstacle or another scene lowers it."),
		score: cameraDesc("drift_score",
			"Population stability index of a feature's distribution over the camera's recent frames against its reference: below 0.1 no drift, above 0.25 significant.", "feature"),
		combined: cameraDesc("drift_combined_score",
			"The camera's drift over all features, on the scale of camera_drift_score."),
		refAge: cameraDesc("reference_age_seconds",
			"Time since the camera's reference profile was built."),
		refFrames: cameraDesc("reference_frames",
			"Frames the camera's reference profile was built from."),
		calibrating: cameraDesc("reference_calibrating",
			"1 while the exporter learns the camera's reference from its frames, else 0."),
		distributions: []distribution{
			dist("brightness", "Mean luma", func(s imagestats.Stats) float64 { return s.Brightness }),
			dist("contrast", "Standard deviation of luma", func(s imagestats.Stats) float64 { return s.Contrast }),
			dist("dark_pixels", "Share of dark pixels", func(s imagestats.Stats) float64 { return s.DarkRatio }),
			dist("overexposed_pixels", "Share of near-white pixels", func(s imagestats.Stats) float64 { return s.OverexposedRatio }),
			dist("edge_density", "Share of edge pixels", func(s imagestats.Stats) float64 { return s.EdgeDensity }),
			dist("saturation", "Mean colour saturation", func(s imagestats.Stats) float64 { return s.Saturation }),
		},
	}
}

// driftState follows one camera's distinct analyzed frames: whether they
// repeat, how they compare with the camera's reference, and the
// distributions of their statistics.
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
	distributions  []histogram
}

func newDriftState(cfg config.Camera, logger *slog.Logger, descs driftDescs) *driftState {
	window := time.Duration(cfg.Reference.Window)
	d := &driftState{
		logger:      logger,
		calibration: time.Duration(cfg.Reference.Calibration),
		// A sample per second at most, far more than scrapes give.
		recent: drift.NewWindow(window, int(window/time.Second)+1),
	}
	if path := cfg.ReferenceFile(); path != "" {
		d.file = reference.NewFile(path)
	}
	d.frozen.overlay.configure(cfg.FrozenOverlay)
	for range descs.distributions {
		d.distributions = append(d.distributions, newHistogram(distributionBuckets))
	}
	// A saved reference shows at once, before the camera's first frame.
	d.refresh(time.Now())
	return d
}

// observe takes a camera's analyzed frame, once per distinct frame, with
// what the detector found in it (nil when the camera does not detect or
// detection failed).
func (d *driftState) observe(now time.Time, frame camera.Frame, f *found, descs driftDescs) {
	d.mu.Lock()
	defer d.mu.Unlock()
	stats := frame.Stats
	if !d.frozen.observe(now, frame.Seq, frame.Coded, frame.Key, stats.Signature) {
		return
	}
	for i, dist := range descs.distributions {
		d.distributions[i].observe(dist.value(stats))
	}

	sample := drift.Sample{Stats: stats, Detected: f != nil}
	if f != nil {
		sample.Objects, sample.Confidences = f.objects, f.confidences
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

func (d *driftState) collect(ch chan<- prometheus.Metric, descs driftDescs, name string, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, append([]string{name}, labels...)...)
	}
	for i, dist := range descs.distributions {
		ch <- d.distributions[i].metric(dist.desc, name)
	}
	if diff, ok := d.frozen.difference(); ok {
		gauge(descs.difference, diff)
	}
	if frozen, ok := d.frozen.frozen(); ok {
		gauge(descs.frozen, boolValue(frozen))
	}
	if d.file != nil {
		gauge(descs.calibrating, boolValue(d.builder != nil))
	}
	if d.ref == nil {
		return
	}
	gauge(descs.refAge, now.Sub(d.ref.Created).Seconds())
	gauge(descs.refFrames, float64(d.ref.Frames))
	if d.hasScene {
		gauge(descs.scene, d.scene)
	}
	if d.registered {
		r := d.registration
		gauge(descs.shift, r.ShiftX, "x")
		gauge(descs.shift, r.ShiftY, "y")
		gauge(descs.scale, r.Scale)
		gauge(descs.rotation, r.RotationDegrees)
		gauge(descs.match, r.MatchRatio)
	}
	if d.scores == nil {
		return
	}
	features := make([]string, 0, len(d.scores))
	for f := range d.scores {
		features = append(features, f)
	}
	sort.Strings(features)
	for _, f := range features {
		gauge(descs.score, d.scores[f], f)
	}
	gauge(descs.combined, d.combined)
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
