package camera_test

import (
	"io"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/camera/decode"
	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
)

// TestStreamSnapshot checks that a manager keeping snapshots gives each
// analysis of a new picture a BGR picture within the snapshot width on
// both sides, in the picture's proportions, of the picture's colors; and
// that the stream measures its frame rate.
func TestStreamSnapshot(t *testing.T) {
	srv, err := rtsptest.Start(rtsptest.Options{}, map[string]*rtsptest.Media{
		// Pure blue: BGR 255, 0, 0 after limited-range rounding.
		"blue": rtsptest.Clip(t, rtsptest.H264, "color=c=blue:s=640x360:r=25", 50, "-g", "25"),
		// Legal but absurd proportions: the snapshot is as tall as it is
		// wide at most, not 10 times the width.
		"tall": rtsptest.Clip(t, rtsptest.H264, "color=c=blue:s=64x640:r=25", 5, "-g", "25"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	m := camera.NewManager(camera.AsNewDecoder(decode.New), slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer m.Close()
	m.KeepSnapshots(160)
	cfg, err := config.Parse([]byte("cameras:\n  - name: blue\n    url: " + srv.URL("blue") +
		"\n  - name: tall\n    url: " + srv.URL("tall") + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	m.Apply(cfg)
	// The frame rate is compared with the rate the server sent at, which
	// a loaded machine's ticker slows down.
	start, sentAtStart := time.Now(), srv.FramesSent("blue")
	analyze := func(s *camera.Stream) (frame camera.Frame) {
		t.Helper()
		testutil.WaitFor(t, "a picture", 10*time.Second, func() bool {
			frame, err = s.Analyze(nil)
			return err == nil
		})
		return frame
	}
	if snap := analyze(m.Stream("tall")).Snapshot; snap.Width != 16 || snap.Height != 160 {
		t.Errorf("snapshot of a 64x640 picture %dx%d, want 16x160", snap.Width, snap.Height)
	}
	s := m.Stream("blue")
	frame := analyze(s)
	snap := frame.Snapshot
	if snap.Width != 160 || snap.Height != 90 || len(snap.Pix) < snap.Stride*snap.Height {
		t.Fatalf("snapshot %dx%d (%d bytes), want 160x90 BGR", snap.Width, snap.Height, len(snap.Pix))
	}
	if b, g, r := snap.Pix[0], snap.Pix[1], snap.Pix[2]; b < 230 || g > 30 || r > 30 {
		t.Errorf("snapshot pixel BGR %d %d %d, want blue", b, g, r)
	}
	// The same key frame again: its snapshot is the caller's already.
	again, err := s.Analyze(nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.Seq == frame.Seq && again.Snapshot.Pix != nil {
		t.Error("a second analysis of the same picture converted it again")
	}
	testutil.WaitFor(t, "the frame rate", 15*time.Second, func() bool {
		return s.Status().FrameRate > 0
	})
	sent := float64(srv.FramesSent("blue")-sentAtStart) / time.Since(start).Seconds()
	if rate := s.Status().FrameRate; math.Abs(rate-sent) > 3 {
		t.Errorf("frame rate %.1f, want the %.1f frames per second the server sent (25 unloaded) ± 3", rate, sent)
	}
}
