package collector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/detector"
	"github.com/camera-exporter/camera_exporter/imagestats"
)

func TestMain(m *testing.M) {
	if _, err := kingpin.CommandLine.Parse([]string{"--collector.image.min-interval=5s", "--collector.image.workers=2"}); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

// stubDecoder stands in for the cgo decoder: these tests are about scrape
// semantics, not pixels. It reports a fixed brightness and, when gate is
// set, blocks every decode until the gate closes.
type stubDecoder struct {
	brightness float64
	gate       chan struct{}
	decodes    *atomic.Int64
	failFirst  bool
}

func (d stubDecoder) Decode([][]byte) error { return nil }

func (d stubDecoder) DecodeKeyframe([][]byte) error {
	if d.decodes.Add(1) == 1 && d.failFirst {
		return errors.New("corrupt key frame")
	}
	if d.gate != nil {
		<-d.gate
	}
	return nil
}

func (d stubDecoder) Analyze(dark float64) (imagestats.Stats, error) {
	return imagestats.Stats{Width: 320, Height: 240, Brightness: d.brightness, DarkRatio: dark}, nil
}

func (d stubDecoder) Picture(width, height int) (detector.Image, error) {
	return detector.Image{Width: width, Height: height, Stride: 3 * width, Pix: make([]byte, 3*width*height)}, nil
}

func (d stubDecoder) Close() {}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// fixture runs an RTSP server with one MJPEG clip per camera name and a
// camera.Manager whose streams decode with stubs.
type fixture struct {
	srv      *rtsptest.Server
	manager  *camera.Manager
	decodes  atomic.Int64
	detector *stubDetector // what managers load for a detector block
}

var clipOnce = sync.OnceValues(func() (*rtsptest.Media, error) {
	dir, err := os.MkdirTemp("", "collector-test")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	return rtsptest.Encode(context.Background(), dir, rtsptest.MJPEG, 25, 5,
		[]string{"-f", "lavfi", "-i", "color=c=gray:s=64x48:r=25"})
})

func newFixture(t *testing.T, names ...string) *fixture {
	t.Helper()
	media, err := clipOnce()
	if err != nil {
		t.Fatal(err)
	}
	clips := map[string]*rtsptest.Media{}
	for _, n := range names {
		clips[n] = media
	}
	srv, err := rtsptest.Start(rtsptest.Options{}, clips)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	f := &fixture{srv: srv}
	f.manager = f.newManager(t, stubDecoder{brightness: 0.5})
	return f
}

// newManager returns a manager whose streams decode with copies of stub,
// counting decodes in f.decodes.
func (f *fixture) newManager(t *testing.T, stub stubDecoder) *camera.Manager {
	stub.decodes = &f.decodes
	newDetector := func(*config.Detector, *slog.Logger) (detector.Detector, error) {
		if f.detector == nil {
			return nil, errors.New("no stub detector")
		}
		return f.detector, nil
	}
	m := camera.NewManager(func(camera.Codec) (camera.Decoder, error) { return stub, nil }, newDetector, discard)
	t.Cleanup(m.Close)
	return m
}

// apply puts the cameras in force on m, without a detector.
func apply(t *testing.T, m *camera.Manager, cameras ...config.Camera) {
	t.Helper()
	if err := m.Apply(&config.Config{Cameras: cameras}); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) camera(t *testing.T, name, extra string) config.Camera {
	t.Helper()
	url := f.srv.URL(name)
	if strings.HasPrefix(name, "dead") {
		url = "rtsp://" + closedAddr(t) + "/dead"
	}
	cfg, err := config.Parse([]byte(fmt.Sprintf("cameras:\n  - name: %s\n    url: %s\n    timeout: 2s\n%s", name, url, extra)))
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Cameras[0]
}

// closedAddr is an address nothing listens on.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func scrapeText(t *testing.T, ctx context.Context, cc *CameraCollector, names ...string) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(cc.WithContext(ctx))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for _, mf := range families {
		if len(names) == 0 || slices.Contains(names, mf.GetName()) {
			if _, err := expfmt.MetricFamilyToText(&out, mf); err != nil {
				t.Fatal(err)
			}
		}
	}
	return out.String()
}

func TestScrapeReportsEveryCamera(t *testing.T) {
	f := newFixture(t, "gate")
	gate := f.camera(t, "gate", "")
	apply(t, f.manager, gate)
	waitAllUp(t, f.manager)
	apply(t, f.manager, gate, f.camera(t, "dead-cam", "")) // gate keeps its session
	cc, err := NewCameraCollector(f.manager, discard)
	if err != nil {
		t.Fatal(err)
	}
	got := scrapeText(t, context.Background(), cc,
		"camera_up", "camera_frame_brightness_ratio", "camera_frame_dark_pixels_ratio", "camera_frame_analysis_success",
		"camera_info", "camera_scrape_collector_success")
	wantLines(t, got,
		`camera_up{camera="dead-cam"} 0`,
		`camera_up{camera="gate"} 1`,
		`camera_frame_brightness_ratio{camera="gate"} 0.5`,
		`camera_frame_dark_pixels_ratio{camera="gate"} 0.15`, // the stub echoes the default threshold
		`camera_frame_analysis_success{camera="dead-cam"} 0`,
		`camera_frame_analysis_success{camera="gate"} 1`,
		`camera_info{camera="gate",codec="mjpeg",height="48",transport="tcp",width="64"} 1`,
		`camera_scrape_collector_success{collector="image"} 1`,
		`camera_scrape_collector_success{collector="stream"} 1`,
	)
	if strings.Contains(got, `camera_frame_brightness_ratio{camera="dead-cam"}`) {
		t.Error("a dead camera reported image values")
	}
}

// wantLines fails t for every line missing from a scrape's text.
func wantLines(t *testing.T, text string, lines ...string) {
	t.Helper()
	for _, want := range lines {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("missing %s in:\n%s", want, text)
		}
	}
}

func TestScrapeDoesNotWaitForSlowCamera(t *testing.T) {
	f := newFixture(t, "slow", "fast")
	gate := make(chan struct{})
	slowManager := f.newManager(t, stubDecoder{brightness: 0.5, gate: gate})
	t.Cleanup(func() { close(gate) }) // runs first: Close waits for the blocked decode
	apply(t, f.manager, f.camera(t, "fast", ""))
	apply(t, slowManager, f.camera(t, "slow", ""))
	both := multiManager{f.manager, slowManager}
	waitAllUp(t, both)

	cc, err := NewCameraCollector(both, discard, "image")
	if err != nil {
		t.Fatal(err)
	}
	// The slow camera's decode is blocked on gate for the whole test, so
	// the scrape can only return by cutting it off at the deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	got := scrapeText(t, ctx, cc, "camera_frame_analysis_success", "camera_frame_brightness_ratio")
	wantLines(t, got,
		`camera_frame_analysis_success{camera="slow"} 0`,
		`camera_frame_analysis_success{camera="fast"} 1`,
		`camera_frame_brightness_ratio{camera="fast"} 0.5`,
	)
}

// multiManager joins the streams of several managers.
type multiManager []*camera.Manager

func (m multiManager) Detector() detector.Detector { return nil }

func (m multiManager) Streams() []*camera.Stream {
	var out []*camera.Stream
	for _, mm := range m {
		out = append(out, mm.Streams()...)
	}
	return out
}

func waitAllUp(t *testing.T, c Cameras) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, s := range c.Streams() {
		for !s.Up(time.Now()) {
			if time.Now().After(deadline) {
				t.Fatalf("camera %s not up", s.Name())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func TestScrapesWithinMinIntervalShareAnalysis(t *testing.T) {
	f := newFixture(t, "gate")
	apply(t, f.manager, f.camera(t, "gate", ""))
	waitAllUp(t, f.manager)
	cc, err := NewCameraCollector(f.manager, discard, "image")
	if err != nil {
		t.Fatal(err)
	}
	// MJPEG makes every frame a new key frame, so only the collector's
	// min-interval cache can make the second scrape skip decoding.
	scrapeText(t, context.Background(), cc)
	scrapeText(t, context.Background(), cc)
	if n := f.decodes.Load(); n != 1 {
		t.Errorf("two scrapes within the min interval decoded %d times, want 1", n)
	}
}

func TestFailedAnalysisIsRetriedWithinMinInterval(t *testing.T) {
	f := newFixture(t, "gate")
	f.manager = f.newManager(t, stubDecoder{brightness: 0.5, failFirst: true})
	apply(t, f.manager, f.camera(t, "gate", ""))
	waitAllUp(t, f.manager)
	cc, err := NewCameraCollector(f.manager, discard, "image")
	if err != nil {
		t.Fatal(err)
	}
	if got := scrapeText(t, context.Background(), cc); !strings.Contains(got, `camera_frame_analysis_success{camera="gate"} 0`) {
		t.Fatalf("first analysis should fail:\n%s", got)
	}
	if got := scrapeText(t, context.Background(), cc); !strings.Contains(got, `camera_frame_analysis_success{camera="gate"} 1`) {
		t.Errorf("a failure was shared with the next scrape:\n%s", got)
	}
}

func TestRemovedCameraVanishes(t *testing.T) {
	f := newFixture(t, "a", "b")
	apply(t, f.manager, f.camera(t, "a", ""), f.camera(t, "b", ""))
	waitAllUp(t, f.manager)
	cc, err := NewCameraCollector(f.manager, discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := scrapeText(t, context.Background(), cc); !strings.Contains(got, `camera="b"`) {
		t.Fatalf("camera b missing before removal:\n%s", got)
	}
	apply(t, f.manager, f.camera(t, "a", ""))
	if got := scrapeText(t, context.Background(), cc); strings.Contains(got, `camera="b"`) {
		t.Errorf("camera b still exported after removal:\n%s", got)
	}
}

func TestMetricsFollowNamingConventions(t *testing.T) {
	f := newFixture(t, "gate")
	apply(t, f.manager, f.camera(t, "gate", ""))
	waitAllUp(t, f.manager)
	lint(t, f.manager)
}

// lint scrapes every collector and reports what promlint finds.
func lint(t *testing.T, cameras Cameras) {
	t.Helper()
	cc, err := NewCameraCollector(cameras, discard)
	if err != nil {
		t.Fatal(err)
	}
	// Not CollectAndLint: its pedantic registry rejects const metrics whose
	// descriptors a collector cannot know before the scrape.
	reg := prometheus.NewRegistry()
	reg.MustRegister(cc.WithContext(context.Background()))
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func TestUnknownCollectorFilter(t *testing.T) {
	if _, err := NewCameraCollector(multiManager{}, discard, "nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("error = %v, want it to name the unknown collector", err)
	}
}
