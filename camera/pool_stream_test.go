package camera_test

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync/atomic"
	"testing"

	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/camera/decode"
	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/video"
)

// TestManagerPoolsKeyframeDecoders analyzes cameras of different sizes and
// codecs one after another, as one image collector worker does: in key
// frame mode they share one decoder per codec, which measures each
// camera's own picture, while a camera that decodes every frame keeps its
// own.
func TestManagerPoolsKeyframeDecoders(t *testing.T) {
	clips := map[string]*rtsptest.Media{
		"dark":   rtsptest.Clip(t, rtsptest.H264, "color=c=0x202020:s=320x240:r=25", 25),
		"light":  rtsptest.Clip(t, rtsptest.H264, "color=c=0xc0c0c0:s=640x360:r=25", 25),
		"middle": rtsptest.Clip(t, rtsptest.H264, "color=c=0x808080:s=160x120:r=25", 25),
		"hevc":   rtsptest.Clip(t, rtsptest.H265, "color=c=0x606060:s=320x240:r=25", 25),
		"all":    rtsptest.Clip(t, rtsptest.H264, "color=c=0x404040:s=320x240:r=25", 25),
	}
	levels := map[string]float64{"dark": 0x20, "light": 0xc0, "middle": 0x80, "hevc": 0x60, "all": 0x40}
	srv := serve(t, rtsptest.Options{}, clips)
	var made, open atomic.Int64
	newDecoder := func(c video.Codec) (camera.Decoder, error) {
		d, err := decode.New(c)
		if err != nil {
			return nil, err
		}
		made.Add(1)
		open.Add(1)
		return closeCounted{d, &open}, nil
	}
	m := camera.NewManager(newDecoder, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var cameras []config.Camera
	for name := range clips {
		entry := fmt.Sprintf("name: %s\nurl: %s", name, srv.URL(name))
		if name == "all" {
			entry += "\ndecode: all"
		}
		cameras = append(cameras, cameraConfig(t, entry))
	}
	apply(t, m, cameras...)
	size := func(w, h int) (int, int) { return 64, 64 }
	for round := range 3 {
		for _, s := range m.Streams() {
			stats := analyzeWhenReady(t, s)
			want := levels[s.Name()] / 255
			if math.Abs(stats.Brightness-want) > 0.01 {
				t.Errorf("round %d, %s: brightness %.3f, want %.3f", round, s.Name(), stats.Brightness, want)
			}
			if frame, err := s.Analyze(size); err != nil || frame.Picture.Width != 64 {
				t.Errorf("round %d, %s: picture for the detector: %v, %dx%d", round, s.Name(), err, frame.Picture.Width, frame.Picture.Height)
			}
		}
	}
	// One H264 and one H265 decoder lent in turn, and the own one of the
	// camera that decodes every frame.
	if n := made.Load(); n != 3 {
		t.Errorf("%d decoders made for 4 key frame cameras of 2 codecs and one decoding every frame, want 3", n)
	}
	m.Close()
	if n := open.Load(); n != 0 {
		t.Errorf("%d decoders still open after Close", n)
	}
}

// closeCounted counts a decoder's Close.
type closeCounted struct {
	camera.Decoder
	open *atomic.Int64
}

func (d closeCounted) Close() {
	d.open.Add(-1)
	d.Decoder.Close()
}
