package camera_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/detector"
	"github.com/camera-exporter/camera_exporter/imagestats"
	"github.com/camera-exporter/camera_exporter/video"
)

// gatedDecoder blocks every key frame decode until gate closes, as a
// decoder stuck on a huge or broken picture would.
type gatedDecoder struct {
	decoding chan<- struct{} // told when a decode starts
	gate     <-chan struct{}
}

func (d gatedDecoder) Decode([][]byte) error { return nil }

func (d gatedDecoder) DecodeKeyframe([][]byte) error {
	d.decoding <- struct{}{}
	<-d.gate
	return nil
}

func (d gatedDecoder) Analyze(float64) (imagestats.Stats, error) { return imagestats.Stats{}, nil }

func (d gatedDecoder) Picture(int, int) (video.Image, error) { return video.Image{}, nil }

func (d gatedDecoder) KeyPicture() bool { return true }

func (d gatedDecoder) PictureSize() (int, int) { return 0, 0 }

func (d gatedDecoder) Close() {}

// stubDetector is a detector that finds nothing.
type stubDetector struct{}

func (stubDetector) Place(w, h int) detector.Placement {
	return detector.Place(detector.ResizeStretch, w, h, 32, 32)
}

func (stubDetector) Detect(context.Context, video.Image, int, int) (detector.Result, error) {
	return detector.Result{}, nil
}
func (stubDetector) Labels() []string    { return []string{"person"} }
func (stubDetector) Info() detector.Info { return detector.Info{Model: "stub"} }
func (stubDetector) Close()              {}

// returnsWhileBlocked fails t unless f returns while something else is
// blocked: f would deadlock otherwise, so the bound only ends a hung test.
// release unblocks it, so that the test's cleanups can run.
func returnsWhileBlocked(t *testing.T, what string, release func(), f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		release()
		t.Fatalf("%s blocked", what)
	}
}

func detectorConfig(t *testing.T) *config.Config {
	t.Helper()
	dir := t.TempDir()
	model, labels := filepath.Join(dir, "stub.pb"), filepath.Join(dir, "stub.names")
	for path, content := range map[string]string{model: "not loaded", labels: "person\n"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Parse(fmt.Appendf(nil, "detector:\n  model: %s\n  labels: %s\n  input_size: 32\n", model, labels))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestManagerLoadsModelWithoutBlockingScrapes loads a model that takes
// long: what scrapes ask the manager must not wait for it.
func TestManagerLoadsModelWithoutBlockingScrapes(t *testing.T) {
	loading, gate := make(chan struct{}), make(chan struct{})
	release := sync.OnceFunc(func() { close(gate) })
	slowLoad := func(*config.Detector, *slog.Logger) (detector.Detector, error) {
		close(loading)
		<-gate
		return stubDetector{}, nil
	}
	m := camera.NewManager(nil, slowLoad, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(m.Close)
	// Made here: t.Fatal must not end the goroutine below, whose Apply
	// the test waits for.
	cfg := detectorConfig(t)
	applied := make(chan error)
	go func() { applied <- m.Apply(cfg) }()
	<-loading
	returnsWhileBlocked(t, "reading the manager during a model load", release, func() {
		m.Streams()
		if m.Detector() != nil {
			t.Error("the detector being loaded is in force already")
		}
	})
	release()
	if err := <-applied; err != nil {
		t.Fatal(err)
	}
	if m.Detector() == nil {
		t.Error("the loaded detector is not in force")
	}
}

// TestManagerStopsStreamsWithoutBlockingScrapes removes a camera whose
// analysis is stuck: Stop waits for it, scrapes must not.
func TestManagerStopsStreamsWithoutBlockingScrapes(t *testing.T) {
	srv := serve(t, rtsptest.Options{}, map[string]*rtsptest.Media{"cam": rtsptest.Clip(t, rtsptest.MJPEG, gray64, 5)})
	decoding, gate := make(chan struct{}, 1), make(chan struct{})
	release := sync.OnceFunc(func() { close(gate) })
	newDecoder := func(video.Codec) (camera.Decoder, error) { return gatedDecoder{decoding: decoding, gate: gate}, nil }
	m := camera.NewManager(newDecoder, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(m.Close)
	apply(t, m, cameraConfig(t, "name: cam\nurl: "+srv.URL("cam")))
	s := m.Streams()[0]
	analyzed := make(chan error)
	go func() {
		for {
			_, err := s.Analyze(nil)
			if err != video.ErrNoPicture {
				analyzed <- err
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	<-decoding // the analysis is stuck in the decoder

	applied := make(chan struct{})
	go func() {
		apply(t, m)
		close(applied)
	}()
	returnsWhileBlocked(t, "reading the manager while a stream stops", release, func() {
		for len(m.Streams()) != 0 {
			time.Sleep(10 * time.Millisecond)
		}
	})
	select {
	case <-applied:
		t.Error("the removed stream stopped while its analysis was in flight")
	default:
	}
	release()
	<-applied
	if err := <-analyzed; err != nil {
		t.Errorf("the analysis in flight failed: %v", err)
	}
}
