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

	"github.com/camera-exporter/camera_exporter/detector"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
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
	cams := cameras(newCamera(t, "dead", "").down(), newCamera(t, "gate", "    transport: udp\n"))
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
	cams := cameras(newCamera(t, "dead", "").down(), newCamera(t, "gate", ""), newCamera(t, "yard", "    dark_threshold: 0.3\n"))
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
	slow := newCamera(t, "slow", "")
	slow.gate = make(chan struct{})
	t.Cleanup(func() { close(slow.gate) })
	cc := newCollector(t, cameras(newCamera(t, "fast", ""), slow), "image")
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
	gate := newCamera(t, "gate", "")
	cc := newCollector(t, cameras(gate), "image")
	// Every analysis of the fake is of a new picture, so only the
	// collector's min-interval cache can make the second scrape skip one.
	for range 2 {
		compare(t, context.Background(), cc, "# TYPE camera_frame_analysis_success gauge\ncamera_frame_analysis_success{camera=\"gate\"} 1\n",
			"camera_frame_analysis_success")
	}
	if n := gate.analyses.Load(); n != 1 {
		t.Errorf("two scrapes within the min interval analyzed %d times, want 1", n)
	}
}

func TestFailedAnalysisIsRetriedWithinMinInterval(t *testing.T) {
	gate := newCamera(t, "gate", "").failing(errors.New("corrupt key frame"))
	cc := newCollector(t, cameras(gate), "image")
	for _, want := range []string{"0", "1"} {
		compare(t, context.Background(), cc, "# TYPE camera_frame_analysis_success gauge\ncamera_frame_analysis_success{camera=\"gate\"} "+want+"\n",
			"camera_frame_analysis_success")
	}
}

func TestRemovedCameraVanishes(t *testing.T) {
	a, b := newCamera(t, "a", ""), newCamera(t, "b", "")
	cams := cameras(a, b)
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
	cams.set(nil, a)
	compare(t, context.Background(), cc, strings.NewReplacer("camera_up{camera=\"b\"} 1\n", "", "camera_frame_analysis_success{camera=\"b\"} 1\n", "").Replace(both),
		"camera_up", "camera_frame_analysis_success")
}

// TestCollectorSuccess checks that camera_scrape_collector_success says
// whether the image collector could do its job, not whether every camera
// is well: that is what the per-camera metrics say.
func TestCollectorSuccess(t *testing.T) {
	failed := errors.New("decoder failed")
	blind := &stubDetector{err: errors.New("forward pass failed")}
	for _, tc := range []struct {
		name     string
		detector detector.Detector
		cameras  func(t *testing.T) []*fakeCamera
		want     string
	}{
		{"all analyzed", nil, func(t *testing.T) []*fakeCamera {
			return []*fakeCamera{newCamera(t, "a", ""), newCamera(t, "b", "")}
		}, "1"},
		{"one of two fails", nil, func(t *testing.T) []*fakeCamera {
			return []*fakeCamera{newCamera(t, "a", "").failing(failed), newCamera(t, "b", "")}
		}, "1"},
		{"every camera up fails", nil, func(t *testing.T) []*fakeCamera {
			return []*fakeCamera{newCamera(t, "a", "").failing(failed), newCamera(t, "b", "").failing(failed), newCamera(t, "c", "").down()}
		}, "0"},
		{"no camera up", nil, func(t *testing.T) []*fakeCamera {
			return []*fakeCamera{newCamera(t, "a", "").down()}
		}, "1"},
		{"no camera", nil, func(*testing.T) []*fakeCamera { return nil }, "1"},
		{"up, waiting for a key frame", nil, func(t *testing.T) []*fakeCamera {
			return []*fakeCamera{newCamera(t, "a", "").failing(video.ErrNoPicture)}
		}, "1"},
		{"every analysis cut off at the deadline", nil, func(t *testing.T) []*fakeCamera {
			slow := newCamera(t, "a", "")
			slow.gate = make(chan struct{})
			t.Cleanup(func() { close(slow.gate) })
			return []*fakeCamera{slow}
		}, "0"},
		{"detector fails on every camera", blind, func(t *testing.T) []*fakeCamera {
			return []*fakeCamera{newCamera(t, "a", ""), newCamera(t, "b", "    detect:\n      enabled: false\n")}
		}, "0"},
		{"detector works", &stubDetector{}, func(t *testing.T) []*fakeCamera {
			return []*fakeCamera{newCamera(t, "a", "")}
		}, "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc := newCollector(t, cameras().set(tc.detector, tc.cameras(t)...), "image")
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			compare(t, ctx, cc, "# TYPE camera_scrape_collector_success gauge\ncamera_scrape_collector_success{collector=\"image\"} "+tc.want+"\n",
				"camera_scrape_collector_success")
		})
	}
}

// TestConcurrentScrapesAndReloads scrapes from many goroutines while
// reloads add and remove cameras and the detector; -race checks that no
// scrape reads what another writes.
func TestConcurrentScrapesAndReloads(t *testing.T) {
	det := &stubDetector{result: detector.Result{Detections: []detector.Detection{detection("person", 0.75)}}}
	all := []*fakeCamera{
		newCamera(t, "a", ""), newCamera(t, "b", ""),
		newCamera(t, "c", "    detect:\n      enabled: false\n"), newCamera(t, "d", "    detect:\n      classes: [car]\n"),
	}
	cams := cameras().set(det, all...)
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
				cams.set(nil, all...)
			case 1:
				cams.set(det, all[:2]...)
			default:
				cams.set(det, all...)
			}
			time.Sleep(time.Millisecond)
		}
	})
	var scrapes sync.WaitGroup
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
	det := &stubDetector{result: detector.Result{Detections: []detector.Detection{detection("person", 0.75)}}}
	cams := cameras().set(det, newCamera(t, "gate", ""), newCamera(t, "dead", "").down())
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
	if _, err := NewCameraCollector(cameras(), discard, "nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("error = %v, want it to name the unknown collector", err)
	}
}

// imageOnly returns an image collector of cams without a min interval, and
// a CameraCollector of it alone.
func imageOnly(t *testing.T, cams *fakeCameras) (*imageCollector, *CameraCollector) {
	t.Helper()
	col, err := newImageCollector(cams, &resources{analysisSlots: make(chan struct{}, 4)}, discard)
	if err != nil {
		t.Fatal(err)
	}
	c := col.(*imageCollector)
	c.minInterval = 0
	return c, &CameraCollector{cameras: cams, collectors: map[string]Collector{"image": c}, logger: discard}
}

// TestLateAnalysisIsTheNextScrapes checks that an analysis that missed its
// scrape's deadline is reported by the next scrape rather than thrown away,
// however short the min interval.
func TestLateAnalysisIsTheNextScrapes(t *testing.T) {
	slow := newCamera(t, "slow", "")
	slow.gate = make(chan struct{})
	release := sync.OnceFunc(func() { close(slow.gate) })
	t.Cleanup(release)
	c, cc := imageOnly(t, cameras(slow))
	success := func(v string) string {
		return "# TYPE camera_frame_analysis_success gauge\ncamera_frame_analysis_success{camera=\"slow\"} " + v + "\n"
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	compare(t, ctx, cc, success("0"), "camera_frame_analysis_success")
	release()
	testutil.WaitFor(t, "the late analysis to finish", 10*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		select {
		case <-c.states[slow].analysis.done:
			return true
		default:
			return false
		}
	})
	compare(t, context.Background(), cc, success("1"), "camera_frame_analysis_success")
	if n := slow.analyses.Load(); n != 1 {
		t.Errorf("%d analyses, want the late one reported without another", n)
	}
	compare(t, context.Background(), cc, success("1"), "camera_frame_analysis_success")
	// At least: back-to-back scrapes make an interval of milliseconds, and
	// the round prepared half of it later may have started already.
	if n := slow.analyses.Load(); n < 2 {
		t.Errorf("%d analyses, want a new one once the late one was reported", n)
	}
}

// TestScrapesPrepareTheNext checks that once the scrapes' interval is
// known, the analyses a scrape reports were started half an interval before
// it, and that no round starts without a scrape to ask for it.
func TestScrapesPrepareTheNext(t *testing.T) {
	cam := newCamera(t, "gate", "")
	_, cc := imageOnly(t, cameras(cam))
	const success = "# TYPE camera_frame_analysis_success gauge\ncamera_frame_analysis_success{camera=\"gate\"} 1\n"
	analyses := func(want int64) func() bool { return func() bool { return cam.analyses.Load() == want } }

	compare(t, context.Background(), cc, success, "camera_frame_analysis_success")
	time.Sleep(time.Second)
	compare(t, context.Background(), cc, success, "camera_frame_analysis_success")
	if n := cam.analyses.Load(); n != 2 {
		t.Fatalf("%d analyses after two scrapes a second apart, want 2", n)
	}
	// Half a second later, with no scrape.
	testutil.WaitFor(t, "the next scrape's analysis", 10*time.Second, analyses(3))
	compare(t, context.Background(), cc, success, "camera_frame_analysis_success")
	if n := cam.analyses.Load(); n != 3 {
		t.Errorf("%d analyses, want the third scrape to report the prepared one", n)
	}
	// That scrape prepared one more round, and nothing follows it.
	testutil.WaitFor(t, "the fourth scrape's analysis", 10*time.Second, analyses(4))
	time.Sleep(2 * time.Second)
	if n := cam.analyses.Load(); n != 4 {
		t.Errorf("%d analyses without scrapes, want 4", n)
	}
}
