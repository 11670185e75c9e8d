package camera_test

import (
	"testing"
	"time"

	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
)

// TestStreamCodedPictureHash checks Frame.Coded, which tells a camera that
// resends one coded picture: equal for the same JPEG or H264 key frame sent
// again, different for the key frames of a live stream, in key frame mode
// and when every frame is decoded.
func TestStreamCodedPictureHash(t *testing.T) {
	srv := serve(t, rtsptest.Options{}, map[string]*rtsptest.Media{
		// A clip of one picture, which the server sends in a loop.
		"mjpeg": rtsptest.Clip(t, rtsptest.MJPEG, halfBlack, 1),
		"h264":  rtsptest.Clip(t, rtsptest.H264, halfBlack, 1),
		"live":  rtsptest.Clip(t, rtsptest.H264, "testsrc2=s=320x240:r=25", 50, "-g", "5"),
	})
	for _, tc := range []struct {
		camera, decode string
		same           bool
	}{
		{"mjpeg", "keyframe", true},
		{"h264", "keyframe", true},
		{"h264", "all", true},
		{"live", "keyframe", false},
		{"live", "all", false},
	} {
		t.Run(tc.camera+" "+tc.decode, func(t *testing.T) {
			t.Parallel()
			s := startStream(t, cameraConfig(t, "name: cam\nurl: "+srv.URL(tc.camera)+"\ndecode: "+tc.decode), nil)
			var frames []camera.Frame
			testutil.WaitFor(t, "three distinct pictures", 10*time.Second, func() bool {
				frame, err := s.Analyze(nil)
				if err == nil && (len(frames) == 0 || frame.Seq != frames[len(frames)-1].Seq) {
					frames = append(frames, frame)
				}
				time.Sleep(50 * time.Millisecond)
				return len(frames) == 3
			})
			for _, f := range frames[1:] {
				if f.Coded == 0 || (f.Coded == frames[0].Coded) != tc.same {
					t.Errorf("coded picture hashes %x and %x, want the same %v", frames[0].Coded, f.Coded, tc.same)
				}
			}
		})
	}
}

// TestStreamKeyPictures checks Frame.Key: every picture of key frame mode
// comes from a key frame; decoding every frame of a stream with a key
// frame every 7 frames, B-frames between, gives pictures of both kinds.
func TestStreamKeyPictures(t *testing.T) {
	srv := serve(t, rtsptest.Options{}, map[string]*rtsptest.Media{
		// B-frames reorder the pictures. A GOP of 7 frames, 280 ms, drifts
		// against the reads of 100 ms: with 5, a read would end at the same
		// place in every GOP, and the latest picture never be a key frame's.
		"live": rtsptest.Clip(t, rtsptest.H264, "testsrc2=s=320x240:r=25", 56, "-g", "7"),
	})
	for _, decode := range []string{"keyframe", "all"} {
		t.Run(decode, func(t *testing.T) {
			t.Parallel()
			s := startStream(t, cameraConfig(t, "name: cam\nurl: "+srv.URL("live")+"\ndecode: "+decode), nil)
			kinds := map[bool]int{}
			var seq uint64
			testutil.WaitFor(t, "a dozen distinct pictures", 10*time.Second, func() bool {
				if frame, err := s.Analyze(nil); err == nil && frame.Seq != seq {
					seq = frame.Seq
					kinds[frame.Key]++
				}
				time.Sleep(10 * time.Millisecond)
				return kinds[true]+kinds[false] >= 12
			})
			if kinds[true] == 0 || (decode == "keyframe") != (kinds[false] == 0) {
				t.Errorf("%d key and %d other pictures", kinds[true], kinds[false])
			}
		})
	}
}
