//go:build matprofile

package camera_test

import (
	"io"
	"log/slog"
	"testing"

	"gocv.io/x/gocv"

	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/camera/decode"
	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
)

// TestStreamsReleaseMats checks that stopping streams, by reload or at
// exit, closes their decoders' Mats.
func TestStreamsReleaseMats(t *testing.T) {
	start := gocv.MatProfile.Count()
	srv := serve(t, rtsptest.Options{}, map[string]*rtsptest.Media{
		"a": rtsptest.Clip(t, rtsptest.H264, gray64, 25),
		"b": rtsptest.Clip(t, rtsptest.MJPEG, gray64, 5),
	})
	m := camera.NewManager(camera.AsNewDecoder(decode.New), slog.New(slog.NewTextHandler(io.Discard, nil)))
	a := cameraConfig(t, "name: a\nurl: "+srv.URL("a"))
	b := cameraConfig(t, "name: b\ndecode: all\nurl: "+srv.URL("b"))
	apply(t, m, a, b)
	for _, s := range m.Streams() {
		analyzeWhenReady(t, s)
	}
	apply(t, m, a) // b is removed by a reload
	m.Close()
	if leaked := gocv.MatProfile.Count() - start; leaked != 0 {
		t.Errorf("%d Mats leaked", leaked)
	}
}
