package collector

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/camera-exporter/camera_exporter/analysis"
	"github.com/camera-exporter/camera_exporter/analysis/analysistest"
	"github.com/camera-exporter/camera_exporter/detector"
	"github.com/camera-exporter/camera_exporter/drift"
	"github.com/camera-exporter/camera_exporter/video"
)

func TestMain(m *testing.M) {
	if _, err := kingpin.CommandLine.Parse([]string{"--collector.image.min-interval=5s", "--collector.image.workers=2"}); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestStreamMetrics(t *testing.T) {
	cams := analysistest.NewCameras(analysistest.NewCamera(t, "dead", "").Down(), analysistest.NewCamera(t, "gate", "    transport: udp\n"))
	compare(t, context.Background(), newCollector(t, cams, "stream"), `
# TYPE camera_up gauge
camera_up{camera="dead"} 0
camera_up{camera="gate"} 1
# TYPE camera_session_up gauge
camera_session_up{camera="dead"} 0
camera_session_up{camera="gate"} 1
# TYPE camera_info gauge
camera_info{camera="gate",codec="mjpeg",height="240",transport="udp",width="320"} 1
# TYPE camera_last_frame_timestamp_seconds gauge
camera_last_frame_timestamp_seconds{camera="gate"} 1.7e+09
# TYPE camera_frames_received_total counter
camera_frames_received_total{camera="dead"} 0
camera_frames_received_total{camera="gate"} 250
# TYPE camera_rtp_packets_lost_total counter
camera_rtp_packets_lost_total{camera="dead"} 0
camera_rtp_packets_lost_total{camera="gate"} 3
# TYPE camera_reconnects_total counter
camera_reconnects_total{camera="dead",reason="auth"} 0
camera_reconnects_total{camera="dead",reason="closed"} 0
camera_reconnects_total{camera="dead",reason="protocol"} 0
camera_reconnects_total{camera="dead",reason="redirect_limit"} 0
camera_reconnects_total{camera="dead",reason="refused"} 4
camera_reconnects_total{camera="dead",reason="stalled"} 0
camera_reconnects_total{camera="dead",reason="timeout"} 0
camera_reconnects_total{camera="gate",reason="auth"} 0
camera_reconnects_total{camera="gate",reason="closed"} 1
camera_reconnects_total{camera="gate",reason="protocol"} 0
camera_reconnects_total{camera="gate",reason="redirect_limit"} 0
camera_reconnects_total{camera="gate",reason="refused"} 0
camera_reconnects_total{camera="gate",reason="stalled"} 0
camera_reconnects_total{camera="gate",reason="timeout"} 0
# TYPE camera_scrape_collector_success gauge
camera_scrape_collector_success{collector="stream"} 1
`, "camera_up", "camera_session_up", "camera_info", "camera_last_frame_timestamp_seconds",
		"camera_frames_received_total", "camera_rtp_packets_lost_total", "camera_reconnects_total",
		"camera_scrape_collector_success")
}

func TestImageMetrics(t *testing.T) {
	cams := analysistest.NewCameras(analysistest.NewCamera(t, "dead", "").Down(), analysistest.NewCamera(t, "gate", ""), analysistest.NewCamera(t, "yard", "    dark_threshold: 0.3\n"))
	compare(t, context.Background(), newCollector(t, cams, "image"), `
# TYPE camera_frame_analysis_success gauge
camera_frame_analysis_success{camera="dead"} 0
camera_frame_analysis_success{camera="gate"} 1
camera_frame_analysis_success{camera="yard"} 1
# TYPE camera_frame_brightness_ratio gauge
camera_frame_brightness_ratio{camera="gate"} 0.5
camera_frame_brightness_ratio{camera="yard"} 0.5
# TYPE camera_frame_dark_pixels_ratio gauge
camera_frame_dark_pixels_ratio{camera="gate"} 0.15
camera_frame_dark_pixels_ratio{camera="yard"} 0.3
# TYPE camera_scrape_collector_success gauge
camera_scrape_collector_success{collector="image"} 1
`, "camera_frame_analysis_success", "camera_frame_brightness_ratio", "camera_frame_dark_pixels_ratio",
		"camera_scrape_collector_success")
}

func TestScrapeDoesNotWaitForSlowCamera(t *testing.T) {
	slow := analysistest.NewCamera(t, "slow", "")
	slow.Gate = make(chan struct{})
	t.Cleanup(func() { close(slow.Gate) })
	cc := newCollector(t, analysistest.NewCameras(analysistest.NewCamera(t, "fast", ""), slow), "image")
	// The slow camera's analysis is blocked for the whole test, so the
	// scrape can only return by cutting it off at the deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	compare(t, ctx, cc, `
# TYPE camera_frame_analysis_success gauge
camera_frame_analysis_success{camera="fast"} 1
camera_frame_analysis_success{camera="slow"} 0
# TYPE camera_frame_brightness_ratio gauge
camera_frame_brightness_ratio{camera="fast"} 0.5
`, "camera_frame_analysis_success", "camera_frame_brightness_ratio")
}

func TestScrapesWithinMinIntervalShareAnalysis(t *testing.T) {
	gate := analysistest.NewCamera(t, "gate", "")
	cc := newCollector(t, analysistest.NewCameras(gate), "image")
	// Every analysis of the fake is of a new picture, so only the
	// collector's min-interval cache can make the second scrape skip one.
	for range 2 {
		compare(t, context.Background(), cc, "# TYPE camera_frame_analysis_success gauge\ncamera_frame_analysis_success{camera=\"gate\"} 1\n",
			"camera_frame_analysis_success")
	}
	if n := gate.Analyses.Load(); n != 1 {
		t.Errorf("two scrapes within the min interval analyzed %d times, want 1", n)
	}
}

func TestFailedAnalysisIsRetriedWithinMinInterval(t *testing.T) {
	gate := analysistest.NewCamera(t, "gate", "").Failing(errors.New("corrupt key frame"))
	cc := newCollector(t, analysistest.NewCameras(gate), "image")
	for _, want := range []string{"0", "1"} {
		compare(t, context.Background(), cc, "# TYPE camera_frame_analysis_success gauge\ncamera_frame_analysis_success{camera=\"gate\"} "+want+"\n",
			"camera_frame_analysis_success")
	}
}

func TestRemovedCameraVanishes(t *testing.T) {
	a, b := analysistest.NewCamera(t, "a", ""), analysistest.NewCamera(t, "b", "")
	cams := analysistest.NewCameras(a, b)
	cc := newCollector(t, cams)
	const both = `
# TYPE camera_up gauge
camera_up{camera="a"} 1
camera_up{camera="b"} 1
# TYPE camera_frame_analysis_success gauge
camera_frame_analysis_success{camera="a"} 1
camera_frame_analysis_success{camera="b"} 1
`
	compare(t, context.Background(), cc, both, "camera_up", "camera_frame_analysis_success")
	cams.Set(nil, a)
	compare(t, context.Background(), cc, strings.NewReplacer("camera_up{camera=\"b\"} 1\n", "", "camera_frame_analysis_success{camera=\"b\"} 1\n", "").Replace(both),
		"camera_up", "camera_frame_analysis_success")
}

// TestCollectorSuccess checks that camera_scrape_collector_success says
// whether the image and detection collectors could do their jobs, not
// whether every camera is well: that is what the per-camera metrics say.
func TestCollectorSuccess(t *testing.T) {
	failed := errors.New("decoder failed")
	blind := &analysistest.Detector{Err: errors.New("forward pass failed")}
	for _, tc := range []struct {
		name     string
		detector detector.Detector
		cameras  func(t *testing.T) []*analysistest.Camera
		want     string // image's, then detection's
	}{
		{"all analyzed", nil, func(t *testing.T) []*analysistest.Camera {
			return []*analysistest.Camera{analysistest.NewCamera(t, "a", ""), analysistest.NewCamera(t, "b", "")}
		}, "1 1"},
		{"one of two fails", nil, func(t *testing.T) []*analysistest.Camera {
			return []*analysistest.Camera{analysistest.NewCamera(t, "a", "").Failing(failed), analysistest.NewCamera(t, "b", "")}
		}, "1 1"},
		{"every camera up fails", nil, func(t *testing.T) []*analysistest.Camera {
			return []*analysistest.Camera{analysistest.NewCamera(t, "a", "").Failing(failed), analysistest.NewCamera(t, "b", "").Failing(failed), analysistest.NewCamera(t, "c", "").Down()}
		}, "0 1"},
		{"no camera up", nil, func(t *testing.T) []*analysistest.Camera {
			return []*analysistest.Camera{analysistest.NewCamera(t, "a", "").Down()}
		}, "1 1"},
		{"no camera", nil, func(*testing.T) []*analysistest.Camera { return nil }, "1 1"},
		{"up, waiting for a key frame", nil, func(t *testing.T) []*analysistest.Camera {
			return []*analysistest.Camera{analysistest.NewCamera(t, "a", "").Failing(video.ErrNoPicture)}
		}, "1 1"},
		{"every analysis cut off at the deadline", nil, func(t *testing.T) []*analysistest.Camera {
			slow := analysistest.NewCamera(t, "a", "")
			slow.Gate = make(chan struct{})
			t.Cleanup(func() { close(slow.Gate) })
			return []*analysistest.Camera{slow}
		}, "0 1"},
		{"detector fails on every camera", blind, func(t *testing.T) []*analysistest.Camera {
			return []*analysistest.Camera{analysistest.NewCamera(t, "a", ""), analysistest.NewCamera(t, "b", "    detect:\n      enabled: false\n")}
		}, "1 0"},
		{"detector works", &analysistest.Detector{}, func(t *testing.T) []*analysistest.Camera {
			return []*analysistest.Camera{analysistest.NewCamera(t, "a", "")}
		}, "1 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc := newCollector(t, analysistest.NewCameras().Set(tc.detector, tc.cameras(t)...), "image", "detection")
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			image, detection, _ := strings.Cut(tc.want, " ")
			compare(t, ctx, cc, "# TYPE camera_scrape_collector_success gauge\n"+
				"camera_scrape_collector_success{collector=\"detection\"} "+detection+"\n"+
				"camera_scrape_collector_success{collector=\"image\"} "+image+"\n",
				"camera_scrape_collector_success")
		})
	}
}

// TestConcurrentScrapesAndReloads scrapes from many goroutines, and reads
// what the pages show, while reloads add and remove cameras and the
// detector; -race checks that no reader reads what another writes.
func TestConcurrentScrapesAndReloads(t *testing.T) {
	det := &analysistest.Detector{Result: detector.Result{Detections: []detector.Detection{analysistest.Detection("person", 0.75)}}}
	all := []*analysistest.Camera{
		analysistest.NewCamera(t, "a", ""), analysistest.NewCamera(t, "b", ""),
		analysistest.NewCamera(t, "c", "    detect:\n      enabled: false\n"), analysistest.NewCamera(t, "d", "    detect:\n      classes: [car]\n"),
	}
	cams := analysistest.NewCameras().Set(det, all...)
	cc := newCollector(t, cams)
	reg := prometheus.NewRegistry()
	reg.MustRegister(cc.WithContext(context.Background()))

	stop := make(chan struct{})
	var reloads sync.WaitGroup
	reloads.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			switch i % 3 {
			case 0:
				cams.Set(nil, all...)
			case 1:
				cams.Set(det, all[:2]...)
			default:
				cams.Set(det, all...)
			}
			time.Sleep(time.Millisecond)
		}
	})
	var scrapes sync.WaitGroup
	scrapes.Go(func() { // the pages, meanwhile
		for range 100 {
			for _, look := range cc.Analyzer().Looks() {
				_ = look.Stats.Brightness
			}
		}
	})
	for range 16 {
		scrapes.Go(func() {
			for range 100 {
				if _, err := reg.Gather(); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	scrapes.Wait()
	close(stop)
	reloads.Wait()
}

func TestMetricsFollowNamingConventions(t *testing.T) {
	det := &analysistest.Detector{Result: detector.Result{Detections: []detector.Detection{analysistest.Detection("person", 0.75)}}}
	cams := analysistest.NewCameras().Set(det, analysistest.NewCamera(t, "gate", ""), analysistest.NewCamera(t, "dead", "").Down())
	// Not CollectAndLint: its pedantic registry rejects const metrics whose
	// descriptors a collector cannot know before the scrape.
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(t, cams).WithContext(context.Background()))
	problems, err := promtest.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func TestUnknownCollectorFilter(t *testing.T) {
	if _, err := NewCameraCollector(analysistest.NewCameras(), discard, "nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("error = %v, want it to name the unknown collector", err)
	}
}

// TestDriftMetrics checks what the drift collector reports of a camera
// that learns its reference: its distributions, and that it calibrates.
func TestDriftMetrics(t *testing.T) {
	gate := analysistest.NewCamera(t, "gate", "    reference:\n      dir: "+t.TempDir()+"\n      calibration: 1h\n")
	compare(t, context.Background(), newCollector(t, analysistest.NewCameras(gate), "drift"), `
# TYPE camera_reference_calibrating gauge
camera_reference_calibrating{camera="gate"} 1
# TYPE camera_frame_brightness_distribution_ratio histogram
camera_frame_brightness_distribution_ratio_bucket{camera="gate",le="0.05"} 0
camera_frame_brightness_distribution_ratio_bucket{camera="gate",le="0.1"} 0
camera_frame_brightness_distribution_ratio_bucket{camera="gate",le="0.2"} 0
camera_frame_brightness_distribution_ratio_bucket{camera="gate",le="0.3"} 0
camera_frame_brightness_distribution_ratio_bucket{camera="gate",le="0.4"} 0
camera_frame_brightness_distribution_ratio_bucket{camera="gate",le="0.5"} 1
camera_frame_brightness_distribution_ratio_bucket{camera="gate",le="0.6"} 1
camera_frame_brightness_distribution_ratio_bucket{camera="gate",le="0.7"} 1
camera_frame_brightness_distribution_ratio_bucket{camera="gate",le="0.8"} 1
camera_frame_brightness_distribution_ratio_bucket{camera="gate",le="0.9"} 1
camera_frame_brightness_distribution_ratio_bucket{camera="gate",le="0.95"} 1
camera_frame_brightness_distribution_ratio_bucket{camera="gate",le="+Inf"} 1
camera_frame_brightness_distribution_ratio_sum{camera="gate"} 0.5
camera_frame_brightness_distribution_ratio_count{camera="gate"} 1
# TYPE camera_frame_frozen gauge
camera_frame_frozen{camera="gate"} 0
# TYPE camera_scrape_collector_success gauge
camera_scrape_collector_success{collector="drift"} 1
`, "camera_reference_calibrating", "camera_frame_brightness_distribution_ratio", "camera_frame_frozen", "camera_scrape_collector_success")
}

// TestCollectorsAnalyzeWhatTheyReport checks that the collectors' flags
// decide what the analyses compute: no inference without the detection
// collector, no drift without the drift collector, and no analysis at all
// with neither of them nor the image collector.
func TestCollectorsAnalyzeWhatTheyReport(t *testing.T) {
	for _, tc := range []struct {
		collectors      []string
		analyses        int64
		detects, drifts bool
		reported        string // a family these collectors report
	}{
		{[]string{"stream"}, 0, false, false, "camera_up"},
		{[]string{"image"}, 1, false, false, "camera_frame_brightness_ratio"},
		{[]string{"detection"}, 1, true, false, "camera_detected_objects"},
		{[]string{"drift"}, 1, false, true, "camera_frame_frozen"},
		{[]string{"stream", "image", "detection", "drift"}, 1, true, true, "camera_detected_objects_total"},
	} {
		t.Run(strings.Join(tc.collectors, ","), func(t *testing.T) {
			det := &analysistest.Detector{Result: detector.Result{Detections: []detector.Detection{analysistest.Detection("person", 0.75)}}}
			gate := analysistest.NewCamera(t, "gate", "")
			reg := prometheus.NewRegistry()
			reg.MustRegister(newCollector(t, analysistest.NewCameras().Set(det, gate), tc.collectors...).WithContext(context.Background()))
			families, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			has := map[string]bool{}
			for _, f := range families {
				has[f.GetName()] = true
			}
			if n := gate.Analyses.Load(); n != tc.analyses {
				t.Errorf("%d analyses, want %d", n, tc.analyses)
			}
			if detected := det.Calls.Load() > 0; detected != tc.detects || has["camera_detector_info"] != tc.detects {
				t.Errorf("detector ran %v, camera_detector_info reported %v; want %v", detected, has["camera_detector_info"], tc.detects)
			}
			if has["camera_frame_brightness_distribution_ratio"] != tc.drifts {
				t.Errorf("distributions reported %v, want %v", has["camera_frame_brightness_distribution_ratio"], tc.drifts)
			}
			if !has[tc.reported] {
				t.Errorf("no %s in %v", tc.reported, has)
			}
		})
	}
}

// TestDriftCollectorMetrics checks every family the drift collector makes
// of a camera's drift, frozen-picture and view state.
func TestDriftCollectorMetrics(t *testing.T) {
	began := time.Unix(1700000000, 0)
	d := &analysis.Drift{
		Difference: 0.0004, HasDifference: true,
		Frozen: true, HasFrozen: true,
		Learns:    true,
		Reference: &drift.Profile{Created: began.Add(-time.Hour), Frames: 60},
		Scene:     0.02, HasScene: true,
		View:     drift.Registration{ShiftX: 0.05, ShiftY: -0.01, Scale: 1.1, RotationDegrees: 2, MatchRatio: 0.9},
		HasView:  true,
		Scores:   map[string]float64{"objects": 0.3, "brightness": 0.05},
		Combined: 0.2,
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectorFunc(func(ch chan<- prometheus.Metric) {
		newDriftCollector().(*driftCollector).collect(ch, "gate", d, began)
	}))
	compareGathered(t, reg, `
# TYPE camera_frame_difference_ratio gauge
camera_frame_difference_ratio{camera="gate"} 0.0004
# TYPE camera_frame_frozen gauge
camera_frame_frozen{camera="gate"} 1
# TYPE camera_reference_calibrating gauge
camera_reference_calibrating{camera="gate"} 0
# TYPE camera_reference_age_seconds gauge
camera_reference_age_seconds{camera="gate"} 3600
# TYPE camera_reference_frames gauge
camera_reference_frames{camera="gate"} 60
# TYPE camera_scene_change_score gauge
camera_scene_change_score{camera="gate"} 0.02
# TYPE camera_view_shift_ratio gauge
camera_view_shift_ratio{axis="x",camera="gate"} 0.05
camera_view_shift_ratio{axis="y",camera="gate"} -0.01
# TYPE camera_view_scale_ratio gauge
camera_view_scale_ratio{camera="gate"} 1.1
# TYPE camera_view_rotation_degrees gauge
camera_view_rotation_degrees{camera="gate"} 2
# TYPE camera_view_match_ratio gauge
camera_view_match_ratio{camera="gate"} 0.9
# TYPE camera_drift_score gauge
camera_drift_score{camera="gate",feature="brightness"} 0.05
camera_drift_score{camera="gate",feature="objects"} 0.3
# TYPE camera_drift_combined_score gauge
camera_drift_combined_score{camera="gate"} 0.2
`, "camera_frame_difference_ratio", "camera_frame_frozen", "camera_reference_calibrating", "camera_reference_age_seconds",
		"camera_reference_frames", "camera_scene_change_score", "camera_view_shift_ratio", "camera_view_scale_ratio",
		"camera_view_rotation_degrees", "camera_view_match_ratio", "camera_drift_score", "camera_drift_combined_score")
}

// collectorFunc sends the metrics of one collect call, unchecked.
type collectorFunc func(chan<- prometheus.Metric)

func (f collectorFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }
func (f collectorFunc) Describe(chan<- *prometheus.Desc)    {}
