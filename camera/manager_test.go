package camera_test

import (
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
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

// TestManagerStopsStreamsWithoutBlockingScrapes removes a camera whose
// analysis is stuck: Stop waits for it, scrapes must not.
func TestManagerStopsStreamsWithoutBlockingScrapes(t *testing.T) {
	srv := serve(t, rtsptest.Options{}, map[string]*rtsptest.Media{"cam": rtsptest.Clip(t, rtsptest.MJPEG, gray64, 5)})
	decoding, gate := make(chan struct{}, 1), make(chan struct{})
	release := sync.OnceFunc(func() { close(gate) })
	newDecoder := func(video.Codec) (camera.Decoder, error) { return gatedDecoder{decoding: decoding, gate: gate}, nil }
	m := camera.NewManager(newDecoder, slog.New(slog.NewTextHandler(io.Discard, nil)))
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
