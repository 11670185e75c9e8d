// Package analysistest provides fakes of what package analysis analyzes:
// cameras and a detector, without RTSP, pixels or a network, for the tests
// of the analyses and of the collectors that report them. camera/, detector/
// and the end-to-end tests cover the real ones.
package analysistest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/camera-exporter/camera_exporter/analysis"
	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/detector"
	"github.com/camera-exporter/camera_exporter/imagestats"
	"github.com/camera-exporter/camera_exporter/video"
)

// LastFrame is when every fake camera's latest frame arrived.
var LastFrame = time.Unix(1700000000, 0)

// Camera stands in for a camera.Stream. Each analysis is of a new
// picture, as with an MJPEG camera, whose every frame is a key frame.
type Camera struct {
	cfg    config.Camera
	status camera.Status
	stats  imagestats.Stats
	// Gate, when set, makes analyses block until it is closed.
	Gate chan struct{}
	// Analyses counts the analyses made.
	Analyses atomic.Int64

	mu   sync.Mutex
	up   bool
	errs []error // what the next analyses return, in order; nil succeeds
	seq  uint64
}

// NewCamera returns an up camera whose entry in exporter.yml would be
// "name: <name>", then extra (YAML lines, indented as in a camera entry).
// Its pictures have brightness 0.5 and, so that tests can tell which
// threshold applies, the camera's dark threshold as their dark share.
func NewCamera(t testing.TB, name, extra string) *Camera {
	t.Helper()
	cfg, err := config.Parse(fmt.Appendf(nil, "cameras:\n  - name: %s\n    url: rtsp://127.0.0.1:8554/%[1]s\n    timeout: 2s\n%s", name, extra))
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Cameras[0]
	f := &Camera{
		cfg: c,
		up:  true,
		status: camera.Status{Connected: true, Codec: video.CodecMJPEG, Width: 320, Height: 240, Transport: c.Transport,
			FramesReceived: 250, KeyframesReceived: 250, BytesReceived: 1e6, PacketsLost: 3, LastFrame: LastFrame},
		stats: imagestats.Stats{Width: 320, Height: 240, Brightness: 0.5, DarkRatio: *c.DarkThreshold},
	}
	f.status.Reconnects[camera.ReasonClosed] = 1
	return f
}

// Down makes c a camera whose session failed.
func (c *Camera) Down() *Camera {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.up = false
	c.status = camera.Status{Transport: c.cfg.Transport}
	c.status.Reconnects[camera.ReasonRefused] = 4
	return c
}

// Failing makes c's next analyses return errs.
func (c *Camera) Failing(errs ...error) *Camera {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs = errs
	return c
}

func (c *Camera) Name() string          { return c.cfg.Name }
func (c *Camera) Config() config.Camera { return c.cfg }

func (c *Camera) Up(time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.up
}

func (c *Camera) Status() camera.Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

func (c *Camera) Analyze(size func(srcW, srcH int) (width, height int)) (camera.Frame, error) {
	c.Analyses.Add(1)
	if c.Gate != nil {
		<-c.Gate
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

// Cameras is what a camera.Manager runs; Set stands for a reload.
type Cameras struct {
	mu       sync.Mutex
	cameras  []analysis.Camera
	detector detector.Detector
}

func NewCameras(cams ...*Camera) *Cameras {
	f := &Cameras{}
	f.Set(nil, cams...)
	return f
}

// Set puts a detector (nil for none) and cameras in force.
func (f *Cameras) Set(det detector.Detector, cams ...*Camera) *Cameras {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cameras, f.detector = nil, det
	for _, c := range cams {
		f.cameras = append(f.cameras, c)
	}
	return f
}

func (f *Cameras) Cameras() []analysis.Camera {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]analysis.Camera(nil), f.cameras...)
}

func (f *Cameras) Detector() detector.Detector {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.detector
}

// Detector stands in for the OpenCV detector.
type Detector struct {
	// Result and Err are what every detection returns.
	Result detector.Result
	Err    error
	// Calls counts the detections.
	Calls atomic.Int64
}

func (d *Detector) Place(srcW, srcH int) detector.Placement {
	return detector.Place(detector.ResizeLetterbox, srcW, srcH, 32, 32)
}

func (d *Detector) Detect(_ context.Context, pic video.Image, srcW, srcH int) (detector.Result, error) {
	d.Calls.Add(1)
	if p := d.Place(srcW, srcH); pic.Width != p.Width || pic.Height != p.Height {
		return detector.Result{}, fmt.Errorf("picture %dx%d, placed %dx%d", pic.Width, pic.Height, p.Width, p.Height)
	}
	return d.Result, d.Err
}

func (d *Detector) Labels() []string { return []string{"person", "car", "dog"} }

func (d *Detector) Info() detector.Info {
	return detector.Info{Model: "stub.onnx", Layout: detector.LayoutYOLOv8, Backend: "opencv", Target: "cpu",
		Requested: "cuda", InputWidth: 32, InputHeight: 32}
}

func (d *Detector) Close() {}

// Detection returns a detection of a 10x10 box.
func Detection(label string, confidence float32) detector.Detection {
	return detector.Detection{Label: label, Confidence: confidence, Box: detector.Box{Width: 10, Height: 10}}
}
