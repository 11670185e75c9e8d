package camera_test

import (
	"strings"
	"testing"
	"time"

	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
)

// A clip of about ten RTP packets per frame, so that sequence numbers
// move on quickly.
const busyPattern = "testsrc=s=320x240:r=25"

// waitFrames waits until s received n frames more than it had.
func waitFrames(t *testing.T, s *camera.Stream, n uint64) {
	t.Helper()
	target := s.Status().FramesReceived + n
	testutil.WaitFor(t, "more frames", 20*time.Second, func() bool { return s.Status().FramesReceived >= target })
}

// TestStreamDuplicatedPacketsAreNotLost serves a camera that sends every
// RTP packet twice: nothing is lost, and the pictures decode.
func TestStreamDuplicatedPacketsAreNotLost(t *testing.T) {
	srv := serve(t, rtsptest.Options{}, map[string]*rtsptest.Media{"cam": rtsptest.Clip(t, rtsptest.MJPEG, busyPattern, 25)})
	srv.Duplicate("cam")
	s := startStream(t, cameraConfig(t, "name: cam\nurl: "+srv.URL("cam")), nil)
	// Hundreds of packets, many more than the tracker's window.
	testutil.WaitFor(t, "a megabyte", 20*time.Second, func() bool { return s.Status().BytesReceived > 1<<20 })
	if lost := s.Status().PacketsLost; lost != 0 {
		t.Errorf("%d packets lost, want 0: every packet arrived, twice", lost)
	}
	analyzeWhenReady(t, s)
	if !s.Up(time.Now()) {
		t.Error("camera down")
	}
}

// TestStreamDroppedPacketsAreLost drops packets of a camera in two bursts:
// exactly those are counted lost, once later ones have arrived.
func TestStreamDroppedPacketsAreLost(t *testing.T) {
	srv := serve(t, rtsptest.Options{}, map[string]*rtsptest.Media{"cam": rtsptest.Clip(t, rtsptest.MJPEG, busyPattern, 25)})
	s := startStream(t, cameraConfig(t, "name: cam\nurl: "+srv.URL("cam")), nil)
	waitFrames(t, s, 1)
	dropped := dropInBursts(t, srv, s)
	waitFrames(t, s, 50)
	st := s.Status()
	if st.PacketsLost != dropped {
		t.Errorf("%d packets lost, want the %d dropped", st.PacketsLost, dropped)
	}
	if st.Reconnects != [len(st.Reconnects)]uint64{} {
		t.Errorf("reconnects %v: the drops must not end the session", st.Reconnects)
	}
}

// dropInBursts drops 3, then 2 packets of camera "cam", each burst once
// the one before is counted lost, and returns how many it dropped.
func dropInBursts(t *testing.T, srv *rtsptest.Server, s *camera.Stream) uint64 {
	t.Helper()
	var dropped uint64
	for _, n := range []int{3, 2} {
		srv.Drop("cam", n)
		dropped += uint64(n)
		testutil.WaitFor(t, "the dropped packets counted", 20*time.Second, func() bool { return s.Status().PacketsLost >= dropped })
	}
	return dropped
}

// TestStreamBypassOverTCP receives H264 over TCP, dropping packets in two
// bursts: the connection hands the RTP packets on before gortsplib, and
// frames, key frames and losses count as they would without.
func TestStreamBypassOverTCP(t *testing.T) {
	srv := serve(t, rtsptest.Options{}, map[string]*rtsptest.Media{"cam": rtsptest.Clip(t, rtsptest.H264, busyPattern, 50, "-g", "10")})
	s := startStream(t, cameraConfig(t, "name: cam\nurl: "+srv.URL("cam")), nil)
	waitFrames(t, s, 1)
	dropped := dropInBursts(t, srv, s)
	// A drop can break the NAL unit it falls in, a decode error; two
	// frames on, the access units are whole again.
	waitFrames(t, s, 2)
	before := s.Status()
	waitFrames(t, s, 50)
	st := s.Status()
	if st.PacketsLost != dropped {
		t.Errorf("%d packets lost, want the %d dropped", st.PacketsLost, dropped)
	}
	if st.Transport != "tcp" {
		t.Fatalf("transport %q, want tcp", st.Transport)
	}
	if s.BypassedPackets() == 0 {
		t.Error("no packet bypassed gortsplib over TCP")
	}
	// 50 frames more, a key frame every 10, and no packet that gortsplib
	// delivered again.
	if keys := st.KeyframesReceived - before.KeyframesReceived; keys < 4 || keys > 6 {
		t.Errorf("%d key frames in %d frames, want one in 10", keys, st.FramesReceived-before.FramesReceived)
	}
	if n := st.DecodeErrors - before.DecodeErrors; n != 0 {
		t.Errorf("%d decode errors after the drops", n)
	}
	analyzeWhenReady(t, s)
}

// TestStreamRestartsWhenEncoderRestarts serves a camera whose encoder
// restarts mid-session with another SSRC, sequence and timestamp base:
// gortsplib drops every packet from then on, so the session is restarted
// for want of a picture, once, and the camera comes back up.
func TestStreamRestartsWhenEncoderRestarts(t *testing.T) {
	srv := serve(t, rtsptest.Options{}, map[string]*rtsptest.Media{"cam": rtsptest.Clip(t, rtsptest.H264, gray64, 25)})
	logs := &testutil.SyncBuffer{}
	s := startStream(t, cameraConfig(t, "name: cam\ntimeout: 1s\nurl: "+srv.URL("cam")), logs)
	testutil.WaitFor(t, "the camera up", 10*time.Second, func() bool { return s.Up(time.Now()) })

	srv.RestartEncoder("cam")
	const reason = "no picture for 1s while receiving data"
	testutil.WaitFor(t, "the session restarted", 20*time.Second, func() bool {
		return strings.Contains(logs.String(), reason) && s.Status().Reconnects[camera.ReasonStalled] > 0
	})
	testutil.WaitFor(t, "the camera up again", 20*time.Second, func() bool { return s.Up(time.Now()) })
	waitFrames(t, s, 25)
	if n := strings.Count(logs.String(), reason); n != 1 {
		t.Errorf("restart logged %d times, want once:\n%s", n, logs)
	}
}
