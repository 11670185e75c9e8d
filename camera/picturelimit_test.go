package camera_test

import (
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"

	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/camera/decode"
	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
	"github.com/camera-exporter/camera_exporter/video"
)

// hugeH264 is a one-frame 320x240 clip whose SPS announces 8192x8192, as
// the camera of issue 10 did: tiny frames, a picture of 67 MP.
func hugeH264(t *testing.T) *rtsptest.Media {
	t.Helper()
	clip := rtsptest.Clip(t, rtsptest.H264, gray64, 1)
	au := clip.AccessUnits[0]
	i := slices.IndexFunc(au, func(n []byte) bool { return h264.NALUType(n[0]&0x1f) == h264.NALUTypeSPS })
	if i < 0 {
		t.Fatal("the clip has no SPS")
	}
	au[i] = camera.WithH264PictureSize(au[i], 512, 512)
	var sps h264.SPS
	if err := sps.Unmarshal(au[i]); err != nil || sps.Width() != 8192 || sps.Height() != 8192 {
		t.Fatalf("rewritten SPS: %dx%d, %v; want 8192x8192", sps.Width(), sps.Height(), err)
	}
	return clip
}

// TestStreamPictureTooLarge serves cameras announcing pictures larger than
// their max_picture_pixels, in-band or in the SDP: each session ends with
// a protocol error that says so before a frame is counted or a key frame
// stored, the camera stays down and backs off, and a healthy camera of
// the same manager keeps working. Clips of one frame carry the parameter
// sets in every access unit, so no session sees a picture before its size.
func TestStreamPictureTooLarge(t *testing.T) {
	huge := hugeH264(t)
	srv := serve(t, rtsptest.Options{}, map[string]*rtsptest.Media{
		"huge":    huge,
		"h264":    rtsptest.Clip(t, rtsptest.H264, gray64, 1),
		"h265":    rtsptest.Clip(t, rtsptest.H265, gray64, 1),
		"mjpeg":   rtsptest.Clip(t, rtsptest.MJPEG, gray64, 1),
		"healthy": rtsptest.Clip(t, rtsptest.MJPEG, gray64, 5),
	})
	sdp := serve(t, rtsptest.Options{AnnounceParameterSets: true}, map[string]*rtsptest.Media{"huge": huge})
	sdp.Pause("huge") // only the SDP tells the size

	const small = "\nmax_picture_pixels: 50000"
	refused := []struct{ entry, want string }{
		{"name: huge\nurl: " + srv.URL("huge"), "picture 8192x8192 (67.1 MP) exceeds max_picture_pixels 12000000"},
		{"name: huge-sdp\nurl: " + sdp.URL("huge"), "picture 8192x8192 (67.1 MP) exceeds max_picture_pixels 12000000"},
		{"name: h264\nurl: " + srv.URL("h264") + small, "picture 320x240 (0.1 MP) exceeds max_picture_pixels 50000"},
		{"name: h265\nurl: " + srv.URL("h265") + small, "picture 320x240 (0.1 MP) exceeds max_picture_pixels 50000"},
		{"name: mjpeg\nurl: " + srv.URL("mjpeg") + small, "picture 320x240 (0.1 MP) exceeds max_picture_pixels 50000"},
	}
	cameras := []config.Camera{cameraConfig(t, "name: healthy\nurl: "+srv.URL("healthy"))}
	for _, r := range refused {
		cameras = append(cameras, cameraConfig(t, r.entry))
	}
	logs := &testutil.SyncBuffer{}
	m := camera.NewManager(camera.AsNewDecoder(decode.New), slog.New(slog.NewTextHandler(logs, nil)))
	t.Cleanup(m.Close)
	apply(t, m, cameras...)
	streams := m.Streams() // by name: healthy first
	i := slices.IndexFunc(streams, func(s *camera.Stream) bool { return s.Name() == "healthy" })
	healthy := streams[i]
	streams = slices.Delete(streams, i, i+1)

	// Two refused sessions each: the camera came back and was refused again.
	testutil.WaitFor(t, "two refused sessions per camera", 20*time.Second, func() bool {
		for _, s := range streams {
			if s.Up(time.Now()) {
				t.Fatalf("camera %s is up", s.Name())
			}
			if s.Status().Reconnects[camera.ReasonProtocol] < 2 {
				return false
			}
		}
		return true
	})
	for _, s := range streams {
		st := s.Status()
		if st.FramesReceived != 0 || st.KeyframesReceived != 0 || st.Width != 0 || st.Height != 0 {
			t.Errorf("camera %s: %d frames, %d key frames, size %dx%d; want nothing of the refused picture",
				s.Name(), st.FramesReceived, st.KeyframesReceived, st.Width, st.Height)
		}
		for _, r := range camera.Reasons() {
			if n := st.Reconnects[r]; r != camera.ReasonProtocol && n != 0 {
				t.Errorf("camera %s: %d reconnects for reason %s, want only protocol", s.Name(), n, r)
			}
		}
		if _, err := s.Analyze(nil); !errors.Is(err, video.ErrNoPicture) {
			t.Errorf("camera %s: Analyze() error = %v, want ErrNoPicture", s.Name(), err)
		}
	}
	for _, r := range refused {
		name, _, _ := strings.Cut(strings.TrimPrefix(r.entry, "name: "), "\n")
		if !strings.Contains(logs.String(), "camera="+name+" reason=protocol err=\""+r.want+"\"") {
			t.Errorf("camera %s: no session ended with %q in the log:\n%s", name, r.want, logs)
		}
	}
	analyzeWhenReady(t, healthy)
	if !healthy.Up(time.Now()) {
		t.Error("the healthy camera is down")
	}
}

// withSPS rewrites every SPS of clip with rewrite, failing t if it has none.
func withSPS(t *testing.T, clip *rtsptest.Media, rewrite func([]byte) []byte) *rtsptest.Media {
	t.Helper()
	isSPS := func(n []byte) bool { return h264.NALUType(n[0]&0x1f) == h264.NALUTypeSPS }
	if clip.Codec == rtsptest.H265 {
		isSPS = func(n []byte) bool { return h265.NALUType(n[0]>>1&0x3f) == h265.NALUType_SPS_NUT }
	}
	rewritten := 0
	for _, au := range clip.AccessUnits {
		for i, n := range au {
			if isSPS(n) {
				au[i] = rewrite(n)
				rewritten++
			}
		}
	}
	if rewritten == 0 {
		t.Fatal("the clip has no SPS")
	}
	return clip
}

// TestStreamPictureSizeBeyondParsing serves cameras whose SPS the exporter
// could not read before issue 20, which libavcodec decodes: an H264 SPS
// whose VUI is cut short after timing_info_present_flag, whose size is
// read all the same, and an H265 SPS whose conformance window is larger
// than the picture, which libavcodec ignores and the size is left to the
// decoder's first picture, in key frame and decode-all modes alike, also
// after a readable SPS of the same id and another size in the same access
// unit, and in decode-all mode without a scrape to analyze a picture.
// max_picture_pixels holds for all, refused sessions end as those of a
// picture too large by its SPS, and the size of those allowed is reported.
func TestStreamPictureSizeBeyondParsing(t *testing.T) {
	gray := func(size string) string { return "color=c=0x404040:s=" + size + ":r=25" }
	truncatedVUI := func(rewrite func([]byte) []byte) func([]byte) []byte {
		return func(sps []byte) []byte { return camera.WithTruncatedVUI(rewrite(sps)) }
	}
	same := func(sps []byte) []byte { return sps }
	badWindow := func(sps []byte) []byte { return camera.WithH265Window(sps, [4]uint32{0, 1000, 0, 0}) }
	// A readable 320x240 SPS, then the picture's own, unreadable, of the
	// same id, which the decoder uses.
	var qvgaSPS []byte
	withSPS(t, rtsptest.Clip(t, rtsptest.H265, gray64, 1), func(sps []byte) []byte { qvgaSPS = sps; return sps })
	afterQVGA := func(clip *rtsptest.Media) *rtsptest.Media {
		for i, au := range clip.AccessUnits {
			if j := slices.IndexFunc(au, func(n []byte) bool { return h265.NALUType(n[0]>>1&0x3f) == h265.NALUType_SPS_NUT }); j >= 0 {
				clip.AccessUnits[i] = slices.Insert(au, j, qvgaSPS)
			}
		}
		return clip
	}
	srv := serve(t, rtsptest.Options{}, map[string]*rtsptest.Media{
		"vui-8k": withSPS(t, rtsptest.Clip(t, rtsptest.H264, gray64, 1),
			truncatedVUI(func(sps []byte) []byte { return camera.WithH264PictureSize(sps, 480, 270) })),
		"vui-vga":               withSPS(t, rtsptest.Clip(t, rtsptest.H264, gray("640x480"), 1), truncatedVUI(same)),
		"window-vga":            withSPS(t, rtsptest.Clip(t, rtsptest.H265, gray("640x480"), 1), badWindow),
		"window-vga-after-qvga": afterQVGA(withSPS(t, rtsptest.Clip(t, rtsptest.H265, gray("640x480"), 1), badWindow)),
		"vui-qvga":              withSPS(t, rtsptest.Clip(t, rtsptest.H264, gray64, 25), truncatedVUI(same)),
		"window-qvga":           withSPS(t, rtsptest.Clip(t, rtsptest.H265, gray64, 25), badWindow),
	})
	const small = "\nmax_picture_pixels: 100000"
	const vga = "picture 640x480 (0.3 MP) exceeds max_picture_pixels 100000"
	refused := []struct {
		name, clip, entry, want string
		unscraped               bool // no analysis: the decode loop refuses it
	}{
		{"vui-8k", "vui-8k", "", "picture 7680x4320 (33.2 MP) exceeds max_picture_pixels 12000000", false},
		{"vui-vga", "vui-vga", small, vga, false},
		{"window-vga", "window-vga", small, vga, false},
		{"window-vga-all", "window-vga", small + "\ndecode: all", vga, false},
		{"window-vga-unscraped", "window-vga", small + "\ndecode: all", vga, true},
		{"window-vga-after-qvga", "window-vga-after-qvga", small, vga, false},
		{"window-vga-after-qvga-all", "window-vga-after-qvga", small + "\ndecode: all", vga, false},
	}
	logs := &testutil.SyncBuffer{}
	m := camera.NewManager(camera.AsNewDecoder(decode.New), slog.New(slog.NewTextHandler(logs, nil)))
	t.Cleanup(m.Close)
	var cameras []config.Camera
	for _, r := range refused {
		cameras = append(cameras, cameraConfig(t, "name: "+r.name+"\nurl: "+srv.URL(r.clip)+r.entry))
	}
	for _, name := range []string{"vui-qvga", "window-qvga"} {
		cameras = append(cameras, cameraConfig(t, "name: "+name+"\nurl: "+srv.URL(name)+small))
	}
	apply(t, m, cameras...)
	streams := map[string]*camera.Stream{}
	for _, s := range m.Streams() {
		streams[s.Name()] = s
	}

	// Two refused sessions each; analyses, as scrapes run them, decode
	// the pictures whose SPS does not tell their size.
	testutil.WaitFor(t, "two refused sessions per camera", 30*time.Second, func() bool {
		done := true
		for _, r := range refused {
			s := streams[r.name]
			if !r.unscraped {
				s.Analyze(nil) //nolint:errcheck // the sessions' ends tell
			}
			done = done && s.Status().Reconnects[camera.ReasonProtocol] >= 2
		}
		return done
	})
	for _, r := range refused {
		s := streams[r.name]
		if st := s.Status(); st.Width != 0 || st.Height != 0 {
			t.Errorf("camera %s: size %dx%d, want nothing of the refused picture", r.name, st.Width, st.Height)
		}
		for _, reason := range camera.Reasons() {
			if n := s.Status().Reconnects[reason]; reason != camera.ReasonProtocol && n != 0 {
				t.Errorf("camera %s: %d reconnects for reason %s, want only protocol", r.name, n, reason)
			}
		}
		if !strings.Contains(logs.String(), "camera="+r.name+" reason=protocol err=\""+r.want+"\"") {
			t.Errorf("camera %s: no session ended with %q in the log:\n%s", r.name, r.want, logs)
		}
	}
	for _, name := range []string{"vui-qvga", "window-qvga"} {
		s := streams[name]
		stats := analyzeWhenReady(t, s)
		if stats.Width != 320 || stats.Height != 240 {
			t.Errorf("camera %s: analyzed a %dx%d picture, want 320x240", name, stats.Width, stats.Height)
		}
		// The next access unit reports the decoded size.
		testutil.WaitFor(t, "the size reported", 5*time.Second, func() bool { return s.Status().Width != 0 })
		if st := s.Status(); st.Width != 320 || st.Height != 240 || !s.Up(time.Now()) {
			t.Errorf("camera %s: size %dx%d, up %v; want 320x240 and up", name, st.Width, st.Height, s.Up(time.Now()))
		}
	}
}

// TestStreamPictureSizeOfEarlierSession serves a camera refused for the
// size of its decoded pictures, which then comes back smaller: a scrape
// before its first picture of the new session finds the stream's decoder
// still holding the refused picture, which says nothing of the new
// session, and the camera comes up.
func TestStreamPictureSizeOfEarlierSession(t *testing.T) {
	badWindow := func(sps []byte) []byte { return camera.WithH265Window(sps, [4]uint32{0, 1000, 0, 0}) }
	srv := serve(t, rtsptest.Options{}, map[string]*rtsptest.Media{
		"vga":  withSPS(t, rtsptest.Clip(t, rtsptest.H265, "color=c=0x404040:s=640x480:r=25", 1), badWindow),
		"qvga": withSPS(t, rtsptest.Clip(t, rtsptest.H265, gray64, 25), badWindow),
	})
	// The camera's URL redirects to the picture it sends now.
	var target atomic.Pointer[string]
	vga, qvga := srv.URL("vga"), srv.URL("qvga")
	target.Store(&vga)
	f := startFake(t, func(req rtsptest.FakeRequest) rtsptest.FakeResponse {
		return redirectTo(*target.Load())(req)
	})
	logs := &testutil.SyncBuffer{}
	s := startStream(t, cameraConfig(t, "name: cam\nurl: "+f.URL("cam")+"\nmax_picture_pixels: 100000\ndecode: all"), logs)
	testutil.WaitFor(t, "a session refused for its decoded picture", 15*time.Second, func() bool {
		s.Analyze(nil) //nolint:errcheck // the session's end tells
		return s.Status().Reconnects[camera.ReasonProtocol] >= 1
	})
	// Smaller, and quiet until the scrape came.
	srv.Pause("qvga")
	target.Store(&qvga)
	testutil.WaitFor(t, "the session to the smaller picture", 15*time.Second, func() bool {
		return s.Status().Connected && srv.Sessions("qvga") > 0
	})
	refusals := s.Status().Reconnects[camera.ReasonProtocol]
	// The scrape: the stream's decoder may hold the refused picture.
	if _, err := s.Analyze(nil); err == nil {
		t.Error("Analyze() before the smaller picture's first frame: no error")
	}
	srv.Resume("qvga")
	testutil.WaitFor(t, "the camera up with the smaller picture", 15*time.Second, func() bool {
		frame, err := s.Analyze(nil)
		return err == nil && frame.Stats.Width == 320 && s.Up(time.Now())
	})
	// The next access unit reports the decoded size.
	testutil.WaitFor(t, "the size reported", 5*time.Second, func() bool { return s.Status().Width != 0 })
	if st := s.Status(); st.Reconnects[camera.ReasonProtocol] != refusals || st.Width != 320 || st.Height != 240 {
		t.Errorf("%d sessions ended for a protocol error since the smaller picture's began, size %dx%d; want none, 320x240:\n%s",
			st.Reconnects[camera.ReasonProtocol]-refusals, st.Width, st.Height, logs)
	}
}
