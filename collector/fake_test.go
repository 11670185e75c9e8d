package collector

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/detector"
	"github.com/camera-exporter/camera_exporter/imagestats"
	"github.com/camera-exporter/camera_exporter/video"
)

// The collectors' tests run on fakes: they are about what the collectors
// make of cameras and detections, not about RTSP or pixels, which camera/,
// detector/ and the end-to-end tests cover with real streams and models.

// lastFrame is when every fake camera's latest frame arrived.
var lastFrame = time.Unix(1700000000, 0)

// fakeCamera stands in for a camera.Stream. Each analysis is of a new
// picture, as with an MJPEG camera, whose every frame is a key frame.
type fakeCamera struct {
	cfg      config.Camera
	status   camera.Status
	stats    imagestats.Stats
	gate     chan struct{} // when set, analyses block until it is closed
	analyses atomic.Int64

	mu   sync.Mutex
	up   bool
	errs []error // what the next analyses return, in order; nil succeeds
	seq  uint64
}

// newCamera returns an up camera whose entry in exporter.yml would be
// "name: <name>", then extra (YAML lines, indented as in a camera entry).
// Its pictures have brightness 0.5 and, so that tests can tell which
// threshold applies, the camera's dark threshold as their dark share.
func newCamera(t testing.TB, name, extra string) *fakeCamera {
	t.Helper()
	cfg, err := config.Parse(fmt.Appendf(nil, "cameras:\n  - name: %s\n    url: rtsp://127.0.0.1:8554/%[1]s\n    timeout: 2s\n%s", name, extra))
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Cameras[0]
	f := &fakeCamera{
		cfg: c,
		up:  true,
		status: camera.Status{Connected: true, Codec: video.CodecMJPEG, Width: 320, Height: 240, Transport: c.Transport,
			FramesReceived: 250, KeyframesReceived: 250, BytesReceived: 1e6, PacketsLost: 3, LastFrame: lastFrame},
		stats: imagestats.Stats{Width: 320, Height: 240, Brightness: 0.5, DarkRatio: *c.DarkThreshold},
	}
	f.status.Reconnects[camera.ReasonClosed] = 1
	return f
}

// down makes c a camera whose session failed.
func (c *fakeCamera) down() *fakeCamera {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.up = false
	c.status = camera.Status{Transport: c.cfg.Transport}
	c.status.Reconnects[camera.ReasonRefused] = 4
	return c
}

// failing makes c's next analyses return errs.
func (c *fakeCamera) failing(errs ...error) *fakeCamera {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs = errs
	return c
}

func (c *fakeCamera) Name() string          { return c.cfg.Name }
func (c *fakeCamera) Config() config.Camera { return c.cfg }

func (c *fakeCamera) Up(time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.up
}

func (c *fakeCamera) Status() camera.Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

func (c *fakeCamera) Analyze(size func(srcW, srcH int) (width, height int)) (camera.Frame, error) {
	c.analyses.Add(1)
	if c.gate != nil {
		<-c.gate
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.errs) > 0 {
		err := c.errs[0]
		c.errs = c.errs[1:]
		if err != nil {
			return camera.Frame{}, err
		}
	}
	c.seq++
	frame := camera.Frame{Seq: c.seq, Stats: c.stats}
	if size != nil {
		width, height := size(c.stats.Width, c.stats.Height)
		frame.Picture = video.Image{Width: width, Height: height, Stride: 3 * width, Pix: make([]byte, 3*width*height)}
	}
	return frame, nil
}

// fakeCameras is what a camera.Manager runs; set stands for a reload.
type fakeCameras struct {
	mu       sync.Mutex
	cameras  []Camera
	detector detector.Detector
}

func cameras(cams ...*fakeCamera) *fakeCameras {
	f := &fakeCameras{}
	f.set(nil, cams...)
	return f
}

// set puts a detector (nil for none) and cameras in force.
func (f *fakeCameras) set(det detector.Detector, cams ...*fakeCamera) *fakeCameras {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cameras, f.detector = nil, det
	for _, c := range cams {
		f.cameras = append(f.cameras, c)
	}
	return f
}

func (f *fakeCameras) Cameras() []Camera {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Camera(nil), f.cameras...)
}

func (f *fakeCameras) Detector() detector.Detector {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.detector
}

// stubDetector stands in for the OpenCV detector.
type stubDetector struct {
	result detector.Result
	err    error
	calls  atomic.Int64
}

func (d *stubDetector) Place(srcW, srcH int) detector.Placement {
	return detector.Place(detector.ResizeLetterbox, srcW, srcH, 32, 32)
}

func (d *stubDetector) Detect(_ context.Context, pic video.Image, srcW, srcH int) (detector.Result, error) {
	d.calls.Add(1)
	if p := d.Place(srcW, srcH); pic.Width != p.Width || pic.Height != p.Height {
		return detector.Result{}, fmt.Errorf("picture %dx%d, placed %dx%d", pic.Width, pic.Height, p.Width, p.Height)
	}
	return d.result, d.err
}

func (d *stubDetector) Labels() []string { return []string{"person", "car", "dog"} }

func (d *stubDetector) Info() detector.Info {
	return detector.Info{Model: "stub.onnx", Layout: detector.LayoutYOLOv8, Backend: "opencv", Target: "cpu",
		Requested: "cuda", InputWidth: 32, InputHeight: 32}
}

func (d *stubDetector) Close() {}

// newCollector creates the named collectors, all when none are named.
func newCollector(t testing.TB, cams Cameras, names ...string) *CameraCollector {
	t.Helper()
	cc, err := NewCameraCollector(cams, discard, names...)
	if err != nil {
		t.Fatal(err)
	}
	return cc
}

// compare scrapes cc once and compares the families named with want, an
// exposition in the text format.
func compare(t testing.TB, ctx context.Context, cc *CameraCollector, want string, names ...string) {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(cc.WithContext(ctx))
	compareGathered(t, reg, want, names...)
}

// compareGathered compares the families named with want, with
// testutil.GatherAndCompare. Help texts are left out of the comparison
// (want has none): they are prose, which promlint and the end-to-end
// fixture check.
func compareGathered(t testing.TB, g prometheus.Gatherer, want string, names ...string) {
	t.Helper()
	withoutHelp := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		families, err := g.Gather()
		for _, mf := range families {
			mf.Help = proto.String("") // as the text parser reads a family without one
		}
		return families, err
	})
	if err := testutil.GatherAndCompare(withoutHelp, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
}
