package collector

import (
	"maps"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/camera-exporter/camera_exporter/analysis"
)

func init() {
	registerCollector("drift", true, true, newDriftCollector)
}

// driftCollector reports what each camera's distinct pictures tell of its
// drift against its reference, frozen pictures and view. Without it, none
// of them is computed.
type driftCollector struct {
	difference, frozen, scene, score, combined *prometheus.Desc
	shift, scale, rotation, match              *prometheus.Desc
	refAge, refFrames, calibrating             *prometheus.Desc
	distributions                              []distribution
}

// distribution is a statistic of a camera's distinct analyzed pictures
// exported as a histogram, so that dashboards can show the input
// distribution over any window.
type distribution struct {
	desc  *prometheus.Desc
	value func(analysis.Distributions) analysis.Histogram
}

func newDriftCollector() Collector {
	return &driftCollector{
		difference: cameraDesc("camera_frame_difference_ratio",
			"Luma difference, 0 to 1, between the camera's latest distinct analyzed frame and the most similar of the ones before it: 0 is the same picture, below 0.00098 (0.25 level) a frozen one."),
		frozen: cameraDesc("camera_frame_frozen",
			"1 if frames still arrive but the camera's picture no longer changes, but for an overlay such as a clock, else 0."),
		scene: cameraDesc("camera_scene_change_score",
			"Deprecated: use camera_view_shift_ratio and camera_view_match_ratio. How much the camera's view differs from its reference scene: 0 the same view, about 0.5 an unrelated one."),
		shift: cameraDesc("camera_view_shift_ratio",
			"How far the camera's view moved from its reference view, as a share of the picture's width (axis x, positive: the scene moved right) or height (axis y, positive: the scene moved down).", "axis"),
		scale: cameraDesc("camera_view_scale_ratio",
			"Zoom of the camera's view against its reference view: 1 unchanged, above 1 the scene looks larger."),
		rotation: cameraDesc("camera_view_rotation_degrees",
			"Rotation of the camera's view against its reference view, counterclockwise positive."),
		match: cameraDesc("camera_view_match_ratio",
			"Share of the camera's reference view found in its picture where the view registers: near 1 for the reference's view; a covered lens, an obstacle or another scene lowers it."),
		score: cameraDesc("camera_drift_score",
			"Population stability index of a feature's distribution over the camera's recent frames against its reference: below 0.1 no drift, above 0.25 significant.", "feature"),
		combined: cameraDesc("camera_drift_combined_score",
			"The camera's drift over all features, on the scale of camera_drift_score."),
		refAge: cameraDesc("camera_reference_age_seconds",
			"Time since the camera's reference profile was built."),
		refFrames: cameraDesc("camera_reference_frames",
			"Frames the camera's reference profile was built from."),
		calibrating: cameraDesc("camera_reference_calibrating",
			"1 while the exporter learns the camera's reference from its frames, else 0."),
		distributions: []distribution{
			{cameraDesc("camera_frame_brightness_distribution_ratio", "Mean luma of the camera's analyzed frames."),
				func(d analysis.Distributions) analysis.Histogram { return d.Brightness }},
			{cameraDesc("camera_frame_contrast_distribution_ratio", "Standard deviation of luma of the camera's analyzed frames."),
				func(d analysis.Distributions) analysis.Histogram { return d.Contrast }},
			{cameraDesc("camera_frame_dark_pixels_distribution_ratio", "Share of dark pixels of the camera's analyzed frames."),
				func(d analysis.Distributions) analysis.Histogram { return d.DarkPixels }},
			{cameraDesc("camera_frame_overexposed_pixels_distribution_ratio", "Share of near-white pixels of the camera's analyzed frames."),
				func(d analysis.Distributions) analysis.Histogram { return d.OverexposedPixels }},
			{cameraDesc("camera_frame_edge_density_distribution_ratio", "Share of edge pixels of the camera's analyzed frames."),
				func(d analysis.Distributions) analysis.Histogram { return d.EdgeDensity }},
			{cameraDesc("camera_frame_saturation_distribution_ratio", "Mean colour saturation of the camera's analyzed frames."),
				func(d analysis.Distributions) analysis.Histogram { return d.Saturation }},
		},
	}
}

// Update never fails: drift is computed from analyses, whose failures the
// image collector reports.
func (c *driftCollector) Update(scrape *Scrape, ch chan<- prometheus.Metric) error {
	round := scrape.Round()
	for _, sc := range round.Cameras {
		if sc.Drift != nil {
			c.collect(ch, sc.Name, sc.Drift, round.Began)
		}
	}
	return nil
}

func (c *driftCollector) collect(ch chan<- prometheus.Metric, name string, d *analysis.Drift, now time.Time) {
	for _, dist := range c.distributions {
		ch <- histogram(dist.desc, dist.value(d.Distributions), name)
	}
	if d.HasDifference {
		ch <- gauge(c.difference, d.Difference, name)
	}
	if d.HasFrozen {
		ch <- gauge(c.frozen, boolValue(d.Frozen), name)
	}
	if d.Learns {
		ch <- gauge(c.calibrating, boolValue(d.Calibrating), name)
	}
	if d.Reference == nil {
		return
	}
	ch <- gauge(c.refAge, now.Sub(d.Reference.Created).Seconds(), name)
	ch <- gauge(c.refFrames, float64(d.Reference.Frames), name)
	if d.HasScene {
		ch <- gauge(c.scene, d.Scene, name)
	}
	if d.HasView {
		v := d.View
		ch <- gauge(c.shift, v.ShiftX, name, "x")
		ch <- gauge(c.shift, v.ShiftY, name, "y")
		ch <- gauge(c.scale, v.Scale, name)
		ch <- gauge(c.rotation, v.RotationDegrees, name)
		ch <- gauge(c.match, v.MatchRatio, name)
	}
	if d.Scores == nil {
		return
	}
	for _, feature := range slices.Sorted(maps.Keys(d.Scores)) {
		ch <- gauge(c.score, d.Scores[feature], name, feature)
	}
	ch <- gauge(c.combined, d.Combined, name)
}
