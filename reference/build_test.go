package reference_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/detector"
	"github.com/camera-exporter/camera_exporter/drift"
	"github.com/camera-exporter/camera_exporter/imagestats"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
	"github.com/camera-exporter/camera_exporter/reference"
	"github.com/camera-exporter/camera_exporter/video"
)

// These tests build without cgo: stubs stand in for camera/decode and
// detector/dnn, which `camera_exporter reference build` passes in.

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// stubPicture is a photograph or decoded frame of a fixed brightness; a
// picture of a person has a bright top left corner.
type stubPicture struct {
	brightness float64
	person     bool
	closed     *atomic.Int32
}

func (p stubPicture) Analyze(dark float64) (imagestats.Stats, error) {
	return imagestats.Stats{Width: 320, Height: 240, Brightness: p.brightness, DarkRatio: dark,
		Signature: make([]uint8, imagestats.SignatureWidth*imagestats.SignatureHeight)}, nil
}

func (p stubPicture) Picture(width, height int) (video.Image, error) {
	pix := make([]byte, 3*width*height)
	if p.person {
		pix[0] = 255
	}
	return video.Image{Width: width, Height: height, Stride: 3 * width, Pix: pix}, nil
}

func (p stubPicture) Close() { p.closed.Add(1) }

// stubDecoder decodes every frame to a stubPicture.
type stubDecoder struct{ stubPicture }

func (stubDecoder) Decode([][]byte) error         { return nil }
func (stubDecoder) DecodeKeyframe([][]byte) error { return nil }
func (stubDecoder) KeyPicture() bool              { return true }
func (stubDecoder) PictureSize() (int, int)       { return 0, 0 }

// stubDetector finds a person in a picture with a bright top left corner,
// and a dog in the others.
type stubDetector struct{ closed atomic.Bool }

func (*stubDetector) Place(srcW, srcH int) detector.Placement {
	return detector.Placement{Width: 160, Height: 120, InputWidth: 160, InputHeight: 120}
}

func (*stubDetector) Detect(_ context.Context, pic video.Image, _, _ int) (detector.Result, error) {
	if pic.Pix[0] == 255 {
		return detector.Result{Detections: []detector.Detection{{Label: "person", Confidence: 0.9}}}, nil
	}
	return detector.Result{Detections: []detector.Detection{{Class: 2, Label: "dog", Confidence: 0.8}}}, nil
}

func (*stubDetector) Labels() []string    { return []string{"person", "car", "dog"} }
func (*stubDetector) Info() detector.Info { return detector.Info{Model: "stub"} }
func (d *stubDetector) Close()            { d.closed.Store(true) }
func (d *stubDetector) load() func(*config.Detector, *slog.Logger) (detector.Detector, error) {
	return func(*config.Detector, *slog.Logger) (detector.Detector, error) { return d, nil }
}

// writeConfig writes an exporter configuration with a detector, whose
// model file is empty, and returns its path.
func writeConfig(t *testing.T, cameras string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range map[string]string{
		"model.pb":     "",
		"labels.txt":   "person\ncar\ndog\n",
		"exporter.yml": "detector:\n  model: model.pb\n  labels: labels.txt\n  input_size: 160\ncameras:\n" + cameras,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "exporter.yml")
}

func TestBuildFromImages(t *testing.T) {
	cfg := writeConfig(t, "  - name: gate\n    url: rtsp://192.0.2.1/s\n    detect:\n      classes: [person]\n")
	images := t.TempDir()
	for _, name := range []string{"person.jpg", "dog.jpg", "sub/empty.jpg", "README"} {
		path := filepath.Join(images, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var closed atomic.Int32
	open := func(path string) (reference.Image, error) {
		if !strings.HasSuffix(path, ".jpg") {
			return nil, errors.New("not an image")
		}
		return stubPicture{brightness: 0.5, person: filepath.Base(path) == "person.jpg", closed: &closed}, nil
	}
	det := &stubDetector{}
	out := filepath.Join(t.TempDir(), "gate.json")
	opts := reference.BuildOptions{
		ConfigFile:  cfg,
		Camera:      "gate",
		Images:      images,
		Output:      out,
		OpenImage:   open,
		NewDetector: det.load(),
		Logger:      discard,
	}
	path, profile, err := reference.Build(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if path != out {
		t.Errorf("wrote %s, want %s", path, out)
	}
	if profile.Frames != 3 || profile.Signature != nil || profile.Source != "images:"+images {
		t.Errorf("reference of %d frames from %s, signature %v; want 3 images and none", profile.Frames, profile.Source, profile.Signature != nil)
	}
	// One person in person.jpg, the dogs not counted: 2 frames of 3 in the
	// bin of no person.
	if got := profile.Features[drift.FeatureObjects]; len(got) < 2 || got[0] != 2 || got[1] != 1 {
		t.Errorf("objects per frame %v, want 2 frames without a person and 1 with one", got)
	}
	if n := closed.Load(); n != 3 {
		t.Errorf("%d images closed, want 3", n)
	}
	if !det.closed.Load() {
		t.Error("the detector was not closed")
	}
	saved, err := drift.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if saved.Frames != profile.Frames {
		t.Errorf("saved %d frames, built %d", saved.Frames, profile.Frames)
	}

	if _, _, err := reference.Build(t.Context(), opts); err == nil || !strings.Contains(err.Error(), "--replace") {
		t.Errorf("a second build over the first: %v, want a refusal that names --replace", err)
	}
	opts.Replace = true
	if _, _, err := reference.Build(t.Context(), opts); err != nil {
		t.Errorf("a second build with Replace: %v", err)
	}
}

func TestBuildFromCamera(t *testing.T) {
	srv, err := rtsptest.Start(rtsptest.Options{}, map[string]*rtsptest.Media{
		"gate": rtsptest.Clip(t, rtsptest.MJPEG, "color=c=gray:s=160x120:r=25", 5),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	refs := t.TempDir()
	// Without detection, the detector is not loaded.
	cfg := writeConfig(t, "  - name: gate\n    url: "+srv.URL("gate")+"\n    reference:\n      dir: "+refs+"\n    detect:\n      enabled: false\n")
	var decoders atomic.Int32
	path, profile, err := reference.Build(t.Context(), reference.BuildOptions{
		ConfigFile: cfg,
		Camera:     "gate",
		Duration:   3 * time.Second,
		Interval:   50 * time.Millisecond,
		NewDecoder: func(video.Codec) (camera.Decoder, error) {
			decoders.Add(1)
			return stubDecoder{stubPicture{brightness: 0.4, closed: new(atomic.Int32)}}, nil
		},
		NewDetector: func(*config.Detector, *slog.Logger) (detector.Detector, error) {
			return nil, errors.New("loaded a detector for a camera that does not detect")
		},
		Logger: discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(refs, "gate.json"); path != want {
		t.Errorf("wrote %s, want the camera's reference file %s", path, want)
	}
	if profile.Frames == 0 || profile.Signature == nil || profile.Source != "stream:"+srv.URL("gate") {
		t.Errorf("reference of %d frames from %s, signature %v; want frames of the stream and a signature", profile.Frames, profile.Source, profile.Signature != nil)
	}
	if _, ok := profile.Features[drift.FeatureObjects]; ok {
		t.Error("object counts in the reference of a camera that does not detect")
	}
	if decoders.Load() == 0 {
		t.Error("the stream was not decoded with the decoder passed in")
	}
	testutil.WaitFor(t, "the session's TEARDOWN", 10*time.Second, func() bool { return srv.Teardowns("gate") == 1 })
}

func TestBuildErrors(t *testing.T) {
	cfg := writeConfig(t, "  - name: gate\n    url: rtsp://192.0.2.1/s\n")
	failing := func(*config.Detector, *slog.Logger) (detector.Detector, error) {
		return nil, errors.New("model.pb: no network")
	}
	for _, tc := range []struct {
		name string
		opts reference.BuildOptions
		want string
	}{
		{"no such camera", reference.BuildOptions{Camera: "yard", Output: "x.json"}, cfg + `: no camera "yard"`},
		{"no output", reference.BuildOptions{Camera: "gate"}, `camera "gate" has no reference.dir: give --output`},
		{"detector", reference.BuildOptions{Camera: "gate", Output: "x.json", NewDetector: failing}, "detector: model.pb: no network"},
		{"missing config", reference.BuildOptions{ConfigFile: cfg + ".missing", Camera: "gate"}, "exporter.yml.missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.opts.ConfigFile == "" {
				tc.opts.ConfigFile = cfg
			}
			tc.opts.Logger = discard
			if _, _, err := reference.Build(t.Context(), tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Build: %v, want an error with %q", err, tc.want)
			}
		})
	}
}
