package camera_test

import (
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
	"github.com/camera-exporter/camera_exporter/imagestats"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
	"github.com/camera-exporter/camera_exporter/video"
)

// brokenDecoder fails every key frame, as libavcodec does on a key frame
// corrupted on a lossy link, and counts its attempts.
type brokenDecoder struct{ attempts *atomic.Int64 }

func (d brokenDecoder) Decode([][]byte) error { return nil }

func (d brokenDecoder) DecodeKeyframe([][]byte) error {
	d.attempts.Add(1)
	return errors.New("invalid NAL unit")
}

func (d brokenDecoder) Analyze(float64) (imagestats.Stats, error) { return imagestats.Stats{}, nil }

func (d brokenDecoder) Picture(int, int) (video.Image, error) { return video.Image{}, nil }

func (d brokenDecoder) PictureSize() (int, int) { return 0, 0 }

func (d brokenDecoder) Close() {}

func (d brokenDecoder) KeyPicture() bool { return true }

// TestStreamDecodesAKeyFrameOnce analyzes a camera whose key frames do not
// decode far more often than it sends them: each is tried once, so
// camera_decode_errors_total counts key frames, not scrapes.
func TestStreamDecodesAKeyFrameOnce(t *testing.T) {
	srv := serve(t, rtsptest.Options{}, map[string]*rtsptest.Media{"cam": rtsptest.Clip(t, rtsptest.H264, gray64, 50)})
	var attempts atomic.Int64
	newDecoder := func(video.Codec) (camera.Decoder, error) { return brokenDecoder{&attempts}, nil }
	s := camera.NewStream(cameraConfig(t, "name: cam\nurl: "+srv.URL("cam")), camera.NewDecoderPool(newDecoder), slog.New(slog.DiscardHandler))
	t.Cleanup(s.Stop)
	testutil.WaitFor(t, "a key frame", 10*time.Second, func() bool { return s.Status().KeyframesReceived > 0 })
	for range 50 {
		if _, err := s.Analyze(nil); err == nil || !strings.Contains(err.Error(), "invalid NAL unit") {
			t.Fatalf("Analyze() error = %v, want the decoder's", err)
		}
	}
	st := s.Status()
	if n := attempts.Load(); n > int64(st.KeyframesReceived) || st.DecodeErrors != uint64(n) {
		t.Errorf("%d decode attempts and %d decode errors for %d key frames, want one each per key frame",
			n, st.DecodeErrors, st.KeyframesReceived)
	}
}
