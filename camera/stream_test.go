package camera_test

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/camera/decode"
	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/detector"
	"github.com/camera-exporter/camera_exporter/imagestats"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
	"github.com/camera-exporter/camera_exporter/video"
	"github.com/pion/rtp"
)

const (
	gray64    = "color=c=0x404040:s=320x240:r=25"
	halfBlack = "color=c=white:s=320x240:r=25,drawbox=x=0:y=0:w=160:h=240:color=black:t=fill"
)

func serve(t testing.TB, opts rtsptest.Options, clips map[string]*rtsptest.Media) *rtsptest.Server {
	t.Helper()
	srv, err := rtsptest.Start(opts, clips)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// cameraConfig resolves a camera entry the way exporter.yml would.
func cameraConfig(t testing.TB, entry string) config.Camera {
	t.Helper()
	cfg, err := config.Parse([]byte("cameras:\n  - " + strings.ReplaceAll(strings.TrimSpace(entry), "\n", "\n    ") + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Cameras[0]
}

func startStream(t testing.TB, cfg config.Camera, logs io.Writer) *camera.Stream {
	t.Helper()
	if logs == nil {
		logs = io.Discard
	}
	s := camera.NewStream(cfg, camera.NewDecoderPool(camera.AsNewDecoder(decode.New)), slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(s.Stop)
	return s
}

func analyzeWhenReady(t testing.TB, s *camera.Stream) imagestats.Stats {
	t.Helper()
	var frame camera.Frame
	var err error
	testutil.WaitFor(t, "an analyzed frame", 10*time.Second, func() bool {
		frame, err = s.Analyze(nil)
		return err == nil
	})
	return frame.Stats
}

// apply puts cameras in force on m, without a detector.
func apply(t testing.TB, m *camera.Manager, cameras ...config.Camera) {
	t.Helper()
	m.Apply(&config.Config{Cameras: cameras})
}

func TestStreamImageStatistics(t *testing.T) {
	for _, tc := range []struct {
		name          string
		codec         rtsptest.Codec
		lavfi         string
		decode        string
		brightness    float64
		darkRatio     float64
		width, height int
	}{
		// 64/255 = 0.251; a decoder that ignored limited range would read 0.278.
		{"h264 limited range gray", rtsptest.H264, gray64, "keyframe", 64.0 / 255, 0, 320, 240},
		{"h265 limited range gray", rtsptest.H265, gray64, "keyframe", 64.0 / 255, 0, 320, 240},
		{"mjpeg full range gray", rtsptest.MJPEG, gray64, "keyframe", 64.0 / 255, 0, 320, 240},
		{"h264 half black", rtsptest.H264, halfBlack, "keyframe", 0.5, 0.5, 320, 240},
		{"h265 half black", rtsptest.H265, halfBlack, "keyframe", 0.5, 0.5, 320, 240},
		{"mjpeg half black", rtsptest.MJPEG, halfBlack, "keyframe", 0.5, 0.5, 320, 240},
		{"h264 decode all", rtsptest.H264, gray64, "all", 64.0 / 255, 0, 320, 240},
		{"h265 decode all", rtsptest.H265, halfBlack, "all", 0.5, 0.5, 320, 240},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := serve(t, rtsptest.Options{}, map[string]*rtsptest.Media{"cam": rtsptest.Clip(t, tc.codec, tc.lavfi, 25)})
			s := startStream(t, cameraConfig(t, fmt.Sprintf("name: cam\nurl: %s\ndecode: %s", srv.URL("cam"), tc.decode)), nil)
			stats := analyzeWhenReady(t, s)
			if math.Abs(stats.Brightness-tc.brightness) > 0.005 {
				t.Errorf("brightness = %.4f, want %.4f", stats.Brightness, tc.brightness)
			}
			if math.Abs(stats.DarkRatio-tc.darkRatio) > 0.01 {
				t.Errorf("dark ratio = %.4f, want %.4f", stats.DarkRatio, tc.darkRatio)
			}
			st := s.Status()
			if st.Codec != video.Codec(tc.codec) || st.Width != tc.width || st.Height != tc.height {
				t.Errorf("status codec %s %dx%d, want %s %dx%d", st.Codec, st.Width, st.Height, tc.codec, tc.width, tc.height)
			}
			if !s.Up(time.Now()) {
				t.Error("stream not up while frames arrive")
			}
		})
	}
}

// TestStreamPictureForDetector checks that Analyze hands the detector the
// analyzed picture, scaled as the detector places it, in both decode modes.
func TestStreamPictureForDetector(t *testing.T) {
	for _, mode := range []string{config.DecodeKeyframe, config.DecodeAll} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			srv := serve(t, rtsptest.Options{}, map[string]*rtsptest.Media{"cam": rtsptest.Clip(t, rtsptest.H264, gray64, 25)})
			s := startStream(t, cameraConfig(t, fmt.Sprintf("name: cam\nurl: %s\ndecode: %s", srv.URL("cam"), mode)), nil)
			analyzeWhenReady(t, s)
			var placedW, placedH int
			size := func(w, h int) (int, int) {
				placedW, placedH = w, h
				p := detector.Place(detector.ResizeLetterbox, w, h, 160, 160)
				return p.Width, p.Height
			}
			frame, err := s.Analyze(size)
			if err != nil {
				t.Fatal(err)
			}
			if placedW != 320 || placedH != 240 {
				t.Errorf("placed a %dx%d picture, want the stream's 320x240", placedW, placedH)
			}
			pic := frame.Picture
			if pic.Width != 160 || pic.Height != 120 || len(pic.Pix) != pic.Stride*pic.Height {
				t.Fatalf("picture %dx%d stride %d, %d bytes, want 160x120", pic.Width, pic.Height, pic.Stride, len(pic.Pix))
			}
			sum := 0
			for _, v := range pic.Pix {
				sum += int(v)
			}
			if mean := float64(sum) / float64(len(pic.Pix)); math.Abs(mean-64) > 3 {
				t.Errorf("picture mean %.1f, want the stream's gray 64", mean)
			}
			if frame.Seq == 0 {
				t.Error("frame has no sequence number")
			}
			testutil.WaitFor(t, "a newer picture", 5*time.Second, func() bool {
				next, err := s.Analyze(nil)
				return err == nil && next.Seq > frame.Seq
			})
		})
	}
}

func TestStreamCountsFramesAtStreamRate(t *testing.T) {
	srv := serve(t, rtsptest.Options{}, map[string]*rtsptest.Media{"cam": rtsptest.Clip(t, rtsptest.H264, gray64, 25)})
	s := startStream(t, cameraConfig(t, "name: cam\nurl: "+srv.URL("cam")), nil)
	testutil.WaitFor(t, "the first frame", 10*time.Second, func() bool { return s.Status().FramesReceived > 0 })

	// Counted against what the server sent, which a loaded machine's ticker
	// slows down. Every frame sent must arrive, however late, and none may
	// be counted twice; only the frames in flight at the start may differ.
	before, sentBefore := s.Status(), srv.FramesSent("cam")
	time.Sleep(2 * time.Second)
	sent := int(srv.FramesSent("cam") - sentBefore)
	if sent < 25 {
		t.Fatalf("the server sent %d frames in 2 s, want about 50", sent)
	}
	testutil.WaitFor(t, fmt.Sprintf("the %d frames sent", sent), 10*time.Second, func() bool {
		return int(s.Status().FramesReceived-before.FramesReceived) >= sent-2
	})
	received := int(s.Status().FramesReceived - before.FramesReceived)
	if sentSince := int(srv.FramesSent("cam") - sentBefore); received > sentSince+2 {
		t.Errorf("received %d frames while the server sent %d", received, sentSince)
	}
	after := s.Status()
	// The clip has one key frame per 25 frames.
	if want := float64(after.FramesReceived) / 25; math.Abs(float64(after.KeyframesReceived)-want) > 1.5 {
		t.Errorf("%d key frames in %d frames, stream sends one per 25", after.KeyframesReceived, after.FramesReceived)
	}
	if after.BytesReceived <= before.BytesReceived {
		t.Error("received bytes did not grow")
	}
}

func TestStreamReconnectsWhenServerReturns(t *testing.T) {
	media := map[string]*rtsptest.Media{"cam": rtsptest.Clip(t, rtsptest.MJPEG, gray64, 5)}
	srv, err := rtsptest.Start(rtsptest.Options{}, media)
	if err != nil {
		t.Fatal(err)
	}
	s := startStream(t, cameraConfig(t, "name: cam\ntimeout: 1s\nurl: "+srv.URL("cam")), nil)
	testutil.WaitFor(t, "camera up", 10*time.Second, func() bool { return s.Up(time.Now()) })

	srv.Close()
	testutil.WaitFor(t, "camera down after the server stopped", 5*time.Second, func() bool { return !s.Up(time.Now()) })

	serve(t, rtsptest.Options{Addr: srv.Addr}, media)
	testutil.WaitFor(t, "camera up again", 15*time.Second, func() bool { return s.Up(time.Now()) })
	// The server closed the session that had video.
	if got := s.Status().Reconnects[camera.ReasonClosed]; got == 0 {
		t.Errorf("reconnects = %v, want one for reason closed", s.Status().Reconnects)
	}
}

func TestStreamCredentials(t *testing.T) {
	const user, pass = "viewer", "s3cr3t-Pa55"
	srv := serve(t, rtsptest.Options{User: user, Pass: pass}, map[string]*rtsptest.Media{"cam": rtsptest.Clip(t, rtsptest.MJPEG, gray64, 5)})
	host := strings.TrimPrefix(srv.URL("cam"), "rtsp://")

	for _, tc := range []struct {
		name, entry string
		wantUp      bool
		secret      string
	}{
		{"fields", fmt.Sprintf("name: cam\nurl: rtsp://%s\nusername: %s\npassword: %s", host, user, pass), true, pass},
		{"in url", fmt.Sprintf("name: cam\nurl: rtsp://%s:%s@%s", user, pass, host), true, pass},
		{"wrong password", fmt.Sprintf("name: cam\ntimeout: 1s\nurl: rtsp://%s\nusername: %s\npassword: wrong-%s", host, user, pass), false, "wrong-" + pass},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs testutil.SyncBuffer
			s := startStream(t, cameraConfig(t, tc.entry), &logs)
			if tc.wantUp {
				testutil.WaitFor(t, "camera up", 10*time.Second, func() bool { return s.Up(time.Now()) })
			} else {
				testutil.WaitFor(t, "a failed attempt", 10*time.Second, func() bool { return strings.Contains(logs.String(), "reconnecting") })
				if s.Up(time.Now()) {
					t.Error("camera up with a wrong password")
				}
			}
			s.Stop()
			if strings.Contains(logs.String(), tc.secret) {
				t.Errorf("password leaked into logs:\n%s", logs.String())
			}
		})
	}
}

func TestStreamSilentCameraStaysDown(t *testing.T) {
	s := startStream(t, cameraConfig(t, "name: cam\ntimeout: 500ms\nurl: rtsp://"+testutil.SilentAddr(t)+"/cam"), nil)
	time.Sleep(time.Second)
	if s.Up(time.Now()) {
		t.Error("silent camera reported up")
	}
	if _, err := s.Analyze(nil); err != video.ErrNoPicture {
		t.Errorf("Analyze() error = %v, want ErrNoPicture", err)
	}
}

func TestManagerKeepsUnchangedCameras(t *testing.T) {
	srv := serve(t, rtsptest.Options{}, map[string]*rtsptest.Media{"a": rtsptest.Clip(t, rtsptest.MJPEG, gray64, 5), "b": rtsptest.Clip(t, rtsptest.MJPEG, gray64, 5)})
	a := cameraConfig(t, "name: a\nurl: "+srv.URL("a"))
	b := cameraConfig(t, "name: b\nurl: "+srv.URL("b"))
	m := camera.NewManager(camera.AsNewDecoder(decode.New), slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(m.Close)

	apply(t, m, a, b)
	first := m.Streams()
	if len(first) != 2 || first[0].Name() != "a" || first[1].Name() != "b" {
		t.Fatalf("streams = %v, want a, b", first)
	}
	changedB := cameraConfig(t, "name: b\ntimeout: 3s\nurl: "+srv.URL("b"))
	apply(t, m, a, changedB)
	second := m.Streams()
	if second[0] != first[0] {
		t.Error("unchanged camera a was restarted")
	}
	if second[1] == first[1] {
		t.Error("changed camera b kept its old session")
	}
	apply(t, m, changedB)
	if got := m.Streams(); len(got) != 1 || got[0].Name() != "b" {
		t.Errorf("after removing a: %v", got)
	}
	if _, err := first[0].Analyze(nil); err != camera.ErrStopped {
		t.Errorf("removed stream Analyze() error = %v, want ErrStopped", err)
	}
}

func TestStreamWithoutKeyframesDecodesEveryFrame(t *testing.T) {
	// An intra-refresh stream whose only IDR picture is removed, as a
	// camera that joins mid-stream and never sends one would look.
	media := rtsptest.Clip(t, rtsptest.H264, gray64, 50, "-bf", "0", "-x264-params", "intra-refresh=1")
	var first [][]byte
	for _, nalu := range media.AccessUnits[0] {
		if nalu[0]&0x1f != 5 { // keep everything but the IDR slice
			first = append(first, nalu)
		}
	}
	media.AccessUnits[0] = first
	srv := serve(t, rtsptest.Options{}, map[string]*rtsptest.Media{"cam": media})
	s := startStream(t, cameraConfig(t, "name: cam\ntimeout: 1s\nurl: "+srv.URL("cam")), nil)

	stats := analyzeWhenReady(t, s)
	if math.Abs(stats.Brightness-64.0/255) > 0.01 {
		t.Errorf("brightness = %.4f, want %.4f", stats.Brightness, 64.0/255)
	}
	if n := s.Status().KeyframesReceived; n != 0 {
		t.Errorf("%d key frames received from a stream without any", n)
	}
}

func TestStreamOverUDP(t *testing.T) {
	rtpPort, rtcpPort := freeUDPPortPair(t)
	srv := serve(t, rtsptest.Options{UDPPorts: [2]int{rtpPort, rtcpPort}},
		map[string]*rtsptest.Media{"cam": rtsptest.Clip(t, rtsptest.H264, gray64, 25, "-bf", "0")})
	s := startStream(t, cameraConfig(t, "name: cam\ntransport: udp\nurl: "+srv.URL("cam")), nil)
	stats := analyzeWhenReady(t, s)
	if math.Abs(stats.Brightness-64.0/255) > 0.005 {
		t.Errorf("brightness = %.4f, want %.4f", stats.Brightness, 64.0/255)
	}
	if got := s.Status().Transport; got != "udp" {
		t.Errorf("transport = %q, want udp", got)
	}
}

// freeUDPPortPair finds an even UDP port whose successor is free too, as
// RTP/RTCP pairs need.
func freeUDPPortPair(t *testing.T) (int, int) {
	t.Helper()
	for range 100 {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		if port%2 != 0 {
			continue
		}
		if c2, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port+1)); err == nil {
			c2.Close()
			return port, port + 1
		}
	}
	t.Fatal("no free UDP port pair")
	return 0, 0
}

// TestStreamStall pauses a camera's video while its session stays open:
// the stream must go down, say so once in the log, and come back up. (The
// session itself ends at the read timeout too, unless the camera keeps it
// alive with RTCP, which this server does not.)
func TestStreamStall(t *testing.T) {
	srv := serve(t, rtsptest.Options{}, map[string]*rtsptest.Media{"cam": rtsptest.Clip(t, rtsptest.MJPEG, gray64, 5)})
	logs := &testutil.SyncBuffer{}
	s := startStream(t, cameraConfig(t, "name: cam\ntimeout: 1s\nurl: "+srv.URL("cam")), logs)
	testutil.WaitFor(t, "the camera up", 10*time.Second, func() bool { return s.Up(time.Now()) })

	srv.Pause("cam")
	testutil.WaitFor(t, "the stall to be logged", 10*time.Second, func() bool {
		return strings.Contains(logs.String(), "Camera stalled")
	})
	if s.Up(time.Now()) {
		t.Error("stalled camera reported up")
	}

	srv.Resume("cam")
	testutil.WaitFor(t, "the camera up again", 10*time.Second, func() bool { return s.Up(time.Now()) })
	if n := strings.Count(logs.String(), "Camera stalled"); n != 1 {
		t.Errorf("stall logged %d times, want once:\n%s", n, logs)
	}
}

// TestStreamReconnectReasons checks that failed sessions are counted by
// why they failed.
func TestStreamReconnectReasons(t *testing.T) {
	const user, pass = "viewer", "s3cr3t-Pa55"
	srv := serve(t, rtsptest.Options{User: user, Pass: pass}, map[string]*rtsptest.Media{"cam": rtsptest.Clip(t, rtsptest.MJPEG, gray64, 5)})
	host := strings.TrimPrefix(srv.URL("cam"), "rtsp://")
	silent := testutil.SilentAddr(t)
	for _, tc := range []struct {
		name, entry string
		want        camera.Reason
	}{
		{"wrong password", fmt.Sprintf("name: cam\ntimeout: 1s\nurl: rtsp://%s\nusername: %s\npassword: wrong", host, user), camera.ReasonAuth},
		{"nothing listens", "name: cam\ntimeout: 1s\nurl: rtsp://" + testutil.FreeAddr(t) + "/cam", camera.ReasonRefused},
		{"never answers", "name: cam\ntimeout: 500ms\nurl: rtsp://" + silent + "/cam", camera.ReasonTimeout},
		{"no such stream", fmt.Sprintf("name: cam\ntimeout: 1s\nurl: rtsp://%s:%s@%s/nope", user, pass, strings.TrimSuffix(host, "/cam")), camera.ReasonProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startStream(t, cameraConfig(t, tc.entry), nil)
			testutil.WaitFor(t, "a reconnect for reason "+tc.want.String(), 10*time.Second, func() bool {
				return s.Status().Reconnects[tc.want] > 0
			})
			for _, r := range camera.Reasons() {
				if n := s.Status().Reconnects[r]; r != tc.want && n != 0 {
					t.Errorf("%d reconnects for reason %s, want only %s", n, r, tc.want)
				}
			}
		})
	}
}

// TestStreamRetriesAtOnceAfterVideo drops a camera's session again and
// again after it delivered video, as a camera with a stale Digest nonce
// does: each retry must come within minBackoff, not back off further.
func TestStreamRetriesAtOnceAfterVideo(t *testing.T) {
	srv := serve(t, rtsptest.Options{}, map[string]*rtsptest.Media{"cam": rtsptest.Clip(t, rtsptest.MJPEG, gray64, 5)})
	logs := &testutil.SyncBuffer{}
	s := startStream(t, cameraConfig(t, "name: cam\nurl: "+srv.URL("cam")), logs)
	for i := range 4 {
		testutil.WaitFor(t, "the camera up", 10*time.Second, func() bool { return s.Up(time.Now()) })
		frames := s.Status().FramesReceived
		testutil.WaitFor(t, "video", 10*time.Second, func() bool { return s.Status().FramesReceived > frames })
		srv.DropSessions("cam")
		testutil.WaitFor(t, "the reconnect", 10*time.Second, func() bool { return s.Status().Reconnects[camera.ReasonClosed] > uint64(i) })
	}
	waits := regexp.MustCompile(`reason=closed .*retry_in=([0-9.]+m?s)`).FindAllStringSubmatch(logs.String(), -1)
	if len(waits) < 4 {
		t.Fatalf("%d reconnects for reason closed logged, want 4:\n%s", len(waits), logs)
	}
	for _, w := range waits {
		if d, err := time.ParseDuration(w[1]); err != nil || d > time.Second {
			t.Errorf("retry in %s after a session with video, want at most 1s", w[1])
		}
	}
}

func TestStreamWithoutPicturesStaysDown(t *testing.T) {
	const (
		h264SEI, h265SEI = 6, 39 // prefix SEI
		h264FU, h265FU   = 28, 49
	)
	h264Type := func(n []byte) int { return int(n[0] & 0x1f) }
	h265Type := func(n []byte) int { return int(n[0]>>1) & 0x3f }
	isVCL := map[rtsptest.Codec]func([]byte) bool{
		rtsptest.H264: func(n []byte) bool { return h264Type(n) >= 1 && h264Type(n) <= 5 },
		rtsptest.H265: func(n []byte) bool { return h265Type(n) < 32 },
	}
	// keep is a clip of the NAL units of clip's first access unit that pass.
	keep := func(t *testing.T, clip *rtsptest.Media, pass func([]byte) bool) *rtsptest.Media {
		t.Helper()
		var au [][]byte
		for _, n := range clip.AccessUnits[0] {
			if pass(n) {
				au = append(au, n)
			}
		}
		if len(au) == 0 {
			t.Fatal("no NAL unit to keep in the clip's first access unit")
		}
		return &rtsptest.Media{Codec: clip.Codec, FPS: clip.FPS, AccessUnits: [][][]byte{au}}
	}
	// neverEnd clears the end bit of every fragmentation unit, at FU header
	// offset fuHeader; the clip's pictures must all be fragmented.
	neverEnd := func(t *testing.T, clip *rtsptest.Media, fuType func([]byte) bool, fuHeader int) *rtsptest.Media {
		t.Helper()
		for _, au := range clip.AccessUnits {
			for _, n := range au {
				if isVCL[clip.Codec](n) && len(n) < 2000 {
					t.Fatalf("a %d-byte picture NAL unit would not be fragmented", len(n))
				}
			}
		}
		clip.EditPackets = func(pkts []*rtp.Packet) []*rtp.Packet {
			for _, p := range pkts {
				if fuType(p.Payload) {
					p.Payload[fuHeader] &^= 0x40
				}
			}
			return pkts
		}
		return clip
	}
	// firstSliceUnended clears the end bit of the fragmentation unit that
	// ends each access unit's first NAL unit, a slice of a picture of two:
	// the second interrupts it, and the access unit completes without it.
	firstSliceUnended := func(t *testing.T, clip *rtsptest.Media, fuType func([]byte) bool, fuHeader int) *rtsptest.Media {
		t.Helper()
		for _, au := range clip.AccessUnits {
			if n := len(slices.DeleteFunc(slices.Clone(au), func(n []byte) bool { return !isVCL[clip.Codec](n) })); n != 2 {
				t.Fatalf("a picture of %d slices, want 2", n)
			}
		}
		clip.EditPackets = func(pkts []*rtp.Packet) []*rtp.Packet {
			for _, p := range pkts {
				if fuType(p.Payload) && p.Payload[fuHeader]&0x40 != 0 {
					p.Payload[fuHeader] &^= 0x40
					break
				}
			}
			return pkts
		}
		return clip
	}
	// Noise makes every picture larger than an RTP packet.
	const noise = gray64 + ",noise=alls=60:allf=t"
	for _, tc := range []struct {
		name  string
		media func(t *testing.T) *rtsptest.Media
		// unfinished: every access unit ends in a fragmented NAL unit
		// without its end, a depacketizing error each, over TCP (through
		// the bypass) and UDP alike.
		unfinished bool
	}{
		{"h264 SEI only", func(t *testing.T) *rtsptest.Media {
			return keep(t, rtsptest.Clip(t, rtsptest.H264, gray64, 1), func(n []byte) bool { return h264Type(n) == h264SEI })
		}, false},
		{"h265 SEI only", func(t *testing.T) *rtsptest.Media {
			return keep(t, rtsptest.Clip(t, rtsptest.H265, gray64, 1), func(n []byte) bool { return h265Type(n) == h265SEI })
		}, false},
		{"h264 parameter sets and SEI", func(t *testing.T) *rtsptest.Media {
			return keep(t, rtsptest.Clip(t, rtsptest.H264, gray64, 1), func(n []byte) bool { return !isVCL[rtsptest.H264](n) })
		}, false},
		{"h265 parameter sets and SEI", func(t *testing.T) *rtsptest.Media {
			return keep(t, rtsptest.Clip(t, rtsptest.H265, gray64, 1), func(n []byte) bool { return !isVCL[rtsptest.H265](n) })
		}, false},
		{"h264 FU-A never ends", func(t *testing.T) *rtsptest.Media {
			return neverEnd(t, rtsptest.Clip(t, rtsptest.H264, noise, 5), func(p []byte) bool { return h264Type(p) == h264FU }, 1)
		}, true},
		{"h265 FU never ends", func(t *testing.T) *rtsptest.Media {
			return neverEnd(t, rtsptest.Clip(t, rtsptest.H265, noise, 5), func(p []byte) bool { return h265Type(p) == h265FU }, 2)
		}, true},
		// The access units miss a slice, without an error when they come.
		{"h264 first slice interrupted", func(t *testing.T) *rtsptest.Media {
			return firstSliceUnended(t, rtsptest.Clip(t, rtsptest.H264, noise, 5, "-slices", "2"),
				func(p []byte) bool { return h264Type(p) == h264FU }, 1)
		}, true},
		{"h265 first slice interrupted", func(t *testing.T) *rtsptest.Media {
			return firstSliceUnended(t, rtsptest.Clip(t, rtsptest.H265, noise, 5, "-x265-params", "log-level=error:slices=2"),
				func(p []byte) bool { return h265Type(p) == h265FU }, 2)
		}, true},
		// rtpmjpeg already emits only complete JPEGs.
		{"mjpeg without last fragments", func(t *testing.T) *rtsptest.Media {
			clip := rtsptest.Clip(t, rtsptest.MJPEG, noise, 5)
			for _, au := range clip.AccessUnits {
				if len(au[0]) < 2000 {
					t.Fatalf("a %d-byte JPEG would not be fragmented", len(au[0]))
				}
			}
			clip.EditPackets = func(pkts []*rtp.Packet) []*rtp.Packet { return pkts[:len(pkts)-1] }
			return clip
		}, false},
	} {
		transports := []string{config.TransportTCP}
		if tc.unfinished {
			transports = append(transports, config.TransportUDP)
		}
		for _, transport := range transports {
			t.Run(tc.name+" "+transport, func(t *testing.T) {
				t.Parallel()
				media := tc.media(t)
				var opts rtsptest.Options
				if transport == config.TransportUDP {
					opts.UDPPorts[0], opts.UDPPorts[1] = freeUDPPortPair(t)
				}
				srv := serve(t, opts, map[string]*rtsptest.Media{"cam": media})
				s := startStream(t, cameraConfig(t, "name: cam\nurl: "+srv.URL("cam")+"\ntransport: "+transport), nil)
				// Two rounds of the clip: a depacketizer that emits an access
				// unit at all has emitted one by then.
				rounds := max(2*len(media.AccessUnits)+1, 5)
				var enough uint64
				for i := range rounds {
					for _, n := range media.AccessUnits[i%len(media.AccessUnits)] {
						enough += uint64(len(n))
					}
				}
				testutil.WaitFor(t, "two rounds of the clip", 10*time.Second, func() bool { return s.Status().BytesReceived >= enough })
				st := s.Status()
				if st.FramesReceived != 0 || st.KeyframesReceived != 0 || !st.Connected {
					t.Errorf("connected %v, %d frames and %d key frames received, want connected and 0",
						st.Connected, st.FramesReceived, st.KeyframesReceived)
				}
				if s.Up(time.Now()) {
					t.Error("camera that sends no picture is up")
				}
				// The access unit in progress may miss its error yet.
				if tc.unfinished && st.DecodeErrors < uint64(rounds-1) {
					t.Errorf("%d decode errors after %d access units that lost a NAL unit each", st.DecodeErrors, rounds)
				}
				if bypassed := s.BypassedPackets() > 0; tc.unfinished && bypassed != (transport == config.TransportTCP) {
					t.Errorf("over %s, the bypass had packets: %v", transport, bypassed)
				}
			})
		}
	}
}

func TestStreamSeveralPPS(t *testing.T) {
	for _, tc := range []struct {
		codec      rtsptest.Codec
		headerSize int
		isPPS      func([]byte) bool
	}{
		{rtsptest.H264, 1, func(n []byte) bool { return n[0]&0x1f == 8 }},
		{rtsptest.H265, 2, func(n []byte) bool { return (n[0]>>1)&0x3f == 34 }},
	} {
		for _, mode := range []string{config.DecodeKeyframe, config.DecodeAll} {
			t.Run(string(tc.codec)+" "+mode, func(t *testing.T) {
				t.Parallel()
				media := rtsptest.Clip(t, tc.codec, gray64, 25)
				inserted := 0
				for i, au := range media.AccessUnits {
					if j := slices.IndexFunc(au, tc.isPPS); j >= 0 {
						media.AccessUnits[i] = slices.Insert(au, j+1, camera.WithPPSID(au[j], tc.headerSize, 1))
						inserted++
					}
				}
				if inserted == 0 {
					t.Fatal("the clip has no PPS")
				}
				srv := serve(t, rtsptest.Options{}, map[string]*rtsptest.Media{"cam": media})
				s := startStream(t, cameraConfig(t, fmt.Sprintf("name: cam\nurl: %s\ndecode: %s", srv.URL("cam"), mode)), nil)
				stats := analyzeWhenReady(t, s)
				if math.Abs(stats.Brightness-64.0/255) > 0.005 {
					t.Errorf("brightness = %.4f, want %.4f", stats.Brightness, 64.0/255)
				}
			})
		}
	}
}

func TestStreamInvalidSPS(t *testing.T) {
	media := rtsptest.Clip(t, rtsptest.H264, gray64, 25)
	// 320 pixels wide, cropped by 400.
	invalid := camera.CraftH264SPS(1, 20, 15, 200, 0)
	inserted := 0
	for i, au := range media.AccessUnits {
		if j := slices.IndexFunc(au, func(n []byte) bool { return n[0]&0x1f == 7 }); j >= 0 {
			media.AccessUnits[i] = slices.Insert(au, j+1, invalid)
			inserted++
		}
	}
	if inserted == 0 {
		t.Fatal("the clip has no SPS")
	}
	srv := serve(t, rtsptest.Options{}, map[string]*rtsptest.Media{"cam": media})
	s := startStream(t, cameraConfig(t, "name: cam\nurl: "+srv.URL("cam")), nil)
	stats := analyzeWhenReady(t, s)
	if math.Abs(stats.Brightness-64.0/255) > 0.005 {
		t.Errorf("brightness = %.4f, want %.4f", stats.Brightness, 64.0/255)
	}
	// The invalid SPS, of another id, leaves the size to the decoder's
	// picture, which the next access unit reports.
	testutil.WaitFor(t, "the size reported", 5*time.Second, func() bool { return s.Status().Width != 0 })
	st := s.Status()
	if st.Width != 320 || st.Height != 240 {
		t.Errorf("status size %dx%d, want the decoded 320x240", st.Width, st.Height)
	}
	if st.DecodeErrors == 0 {
		t.Error("the invalid SPS counted no decode error")
	}
}

func TestStreamStatusBeforeFirstFrame(t *testing.T) {
	for _, tc := range []struct {
		name  string
		codec rtsptest.Codec
		udp   bool
		want  string
	}{
		{"h264 udp", rtsptest.H264, true, "udp"},
		{"h265 tcp only", rtsptest.H265, false, "tcp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := rtsptest.Options{AnnounceParameterSets: true}
			if tc.udp {
				opts.UDPPorts[0], opts.UDPPorts[1] = freeUDPPortPair(t)
			}
			srv := serve(t, opts, map[string]*rtsptest.Media{"cam": rtsptest.Clip(t, tc.codec, gray64, 1)})
			srv.Pause("cam")
			s := startStream(t, cameraConfig(t, "name: cam\ntransport: auto\nurl: "+srv.URL("cam")), nil)
			testutil.WaitFor(t, "the session", 10*time.Second, func() bool { return s.Status().Connected })
			st := s.Status()
			if st.Transport != tc.want || st.Width != 320 || st.Height != 240 || st.FramesReceived != 0 {
				t.Errorf("status transport %q, %dx%d, %d frames; want %q, 320x240, 0 frames",
					st.Transport, st.Width, st.Height, st.FramesReceived, tc.want)
			}
			if tc.udp {
				// No UDP packet within gortsplib's initial timeout: it
				// switches to TCP.
				testutil.WaitFor(t, "the switch to tcp", 10*time.Second, func() bool { return s.Status().Transport == "tcp" })
			}
		})
	}
}

// TestStreamDamagedKeyFrameDecodeAll serves a camera, decoded in full,
// whose key frames lose their first slice to the second, which interrupts
// its fragments: no key frame is counted or kept, and the frames after
// each, which refer to it, are not decoded: the decoder waits for a whole
// key frame, and counts no decode error of its own.
func TestStreamDamagedKeyFrameDecodeAll(t *testing.T) {
	const h264IDR, h264FU = 5, 28
	clip := rtsptest.Clip(t, rtsptest.H264, gray64+",noise=alls=60:allf=t", 25, "-slices", "2")
	clip.EditPackets = func(pkts []*rtp.Packet) []*rtp.Packet {
		for _, p := range pkts {
			if p.Payload[0]&0x1f == h264FU && p.Payload[1]&0x1f == h264IDR && p.Payload[1]&0x40 != 0 {
				p.Payload[1] &^= 0x40 // the end of the key frame's first slice
				break
			}
		}
		return pkts
	}
	srv := serve(t, rtsptest.Options{}, map[string]*rtsptest.Media{"cam": clip})
	s := startStream(t, cameraConfig(t, "name: cam\nurl: "+srv.URL("cam")+"\ndecode: all"), nil)
	// Two rounds of the clip, two damaged key frames.
	testutil.WaitFor(t, "two rounds of the clip", 10*time.Second, func() bool { return s.Status().FramesReceived >= 2*24 })
	st := s.Status()
	if st.KeyframesReceived != 0 {
		t.Errorf("%d key frames received, want 0", st.KeyframesReceived)
	}
	// One depacketizing error per key frame, none from the decoder.
	if rounds := st.FramesReceived/24 + 1; st.DecodeErrors == 0 || st.DecodeErrors > rounds {
		t.Errorf("%d decode errors after %d frames, want one per damaged key frame", st.DecodeErrors, st.FramesReceived)
	}
	if _, err := s.Analyze(nil); !errors.Is(err, video.ErrNoPicture) {
		t.Errorf("Analyze() error = %v, want ErrNoPicture: nothing decoded", err)
	}
}

// TestStreamDecodeAllBeforeFirstPicture serves a camera, decoded in full,
// whose key frames name a picture parameter set it never sends: frames
// arrive and the stream's own decoder takes them, but makes no picture.
// Analyze says so with the one error of a camera without a picture yet,
// which the collectors excuse, as before the decoder existed: no failed
// analysis is counted before the first picture.
func TestStreamDecodeAllBeforeFirstPicture(t *testing.T) {
	const h264IDR = 5
	// An I slice header: first_mb_in_slice 0, slice_type 7, then
	// pic_parameter_set_id 200, which no PPS of the clip has.
	missingPPS := []byte{0x60 | h264IDR, 0x88, 0x01, 0x93, 0x80}
	var au [][]byte
	for _, n := range rtsptest.Clip(t, rtsptest.H264, gray64, 1).AccessUnits[0] {
		if n[0]&0x1f == h264IDR {
			n = missingPPS
		}
		au = append(au, n)
	}
	clip := &rtsptest.Media{Codec: rtsptest.H264, FPS: 25, AccessUnits: [][][]byte{au}}
	srv := serve(t, rtsptest.Options{}, map[string]*rtsptest.Media{"cam": clip})
	s := startStream(t, cameraConfig(t, "name: cam\nurl: "+srv.URL("cam")+"\ndecode: all"), nil)
	// Key frames the stream's decoder failed on: it exists, without a picture.
	testutil.WaitFor(t, "key frames decoded in vain", 10*time.Second, func() bool { return s.Status().DecodeErrors >= 2 })
	if st := s.Status(); st.KeyframesReceived < 2 {
		t.Fatalf("%d key frames received, want the clip's", st.KeyframesReceived)
	}
	if _, err := s.Analyze(nil); !errors.Is(err, video.ErrNoPicture) {
		t.Errorf("Analyze() error = %v, want ErrNoPicture: no picture decoded yet", err)
	}
}
