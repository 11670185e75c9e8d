package camera_test

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
)

// intraRefreshClip is what an intra-refresh camera sends: x264's periodic
// intra refresh, with a recovery point SEI at the start of each refresh
// cycle but the first, and without its one IDR picture.
func intraRefreshClip(t *testing.T, frames int) *rtsptest.Media {
	t.Helper()
	media := rtsptest.Clip(t, rtsptest.H264, gray64, frames, "-bf", "0", "-x264-params", "intra-refresh=1")
	media.AccessUnits[0] = slices.DeleteFunc(media.AccessUnits[0], func(nalu []byte) bool { return nalu[0]&0x1f == 5 })
	recoveryPoints := 0
	for _, au := range media.AccessUnits {
		for _, nalu := range au {
			if nalu[0]&0x1f == 6 && len(nalu) > 1 && nalu[1] == 6 { // SEI, first payload a recovery point
				recoveryPoints++
			}
		}
	}
	if recoveryPoints == 0 {
		t.Fatal("x264 wrote no recovery point SEI")
	}
	return media
}

// TestStreamIntraRefreshParameterSetsInSDP: a camera that announces its
// SPS/PPS in the SDP only and never sends a key frame. The decoder of every
// frame must get the SDP's parameter sets to decode anything.
func TestStreamIntraRefreshParameterSetsInSDP(t *testing.T) {
	for _, mode := range []string{config.DecodeAll, config.DecodeKeyframe} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			media := intraRefreshClip(t, 50)
			media.OutOfBandParameterSets = true
			srv := serve(t, rtsptest.Options{AnnounceParameterSets: true}, map[string]*rtsptest.Media{"cam": media})
			s := startStream(t, cameraConfig(t, fmt.Sprintf("name: cam\ntimeout: 1s\ndecode: %s\nurl: %s", mode, srv.URL("cam"))), nil)

			stats := analyzeWhenReady(t, s)
			if math.Abs(stats.Brightness-64.0/255) > 0.01 {
				t.Errorf("brightness = %.4f, want %.4f", stats.Brightness, 64.0/255)
			}
			if n := s.Status().DecodeErrors; n != 0 {
				t.Errorf("%d decode errors, want 0", n)
			}
		})
	}
}

// TestStreamLongGOP: a camera whose key frames come further apart than the
// camera's timeout, joined mid-GOP, is no intra-refresh camera: it stays in
// key frame mode, and the P-frames before its first key frame are no
// decode errors.
func TestStreamLongGOP(t *testing.T) {
	// 2.4 s between key frames, 2.2 s from the start to the first.
	media := rtsptest.Clip(t, rtsptest.H264, gray64, 60, "-g", "60")
	media.AccessUnits = append(media.AccessUnits[5:], media.AccessUnits[:5]...)
	srv := serve(t, rtsptest.Options{}, map[string]*rtsptest.Media{"cam": media})
	var logs testutil.SyncBuffer
	s := startStream(t, cameraConfig(t, "name: cam\ntimeout: 1s\nurl: "+srv.URL("cam")), &logs)

	stats := analyzeWhenReady(t, s)
	if math.Abs(stats.Brightness-64.0/255) > 0.005 {
		t.Errorf("brightness = %.4f, want %.4f", stats.Brightness, 64.0/255)
	}
	testutil.WaitFor(t, "a second key frame", 10*time.Second, func() bool { return s.Status().KeyframesReceived >= 2 })
	if strings.Contains(logs.String(), "decoding every frame") {
		t.Errorf("a long GOP switched to decoding every frame:\n%s", logs.String())
	}
	if n := s.Status().DecodeErrors; n != 0 {
		t.Errorf("%d decode errors, want 0", n)
	}
}

// TestStreamRecoveryPointMeansIntraRefresh: recovery point SEI without key
// frames tells an intra-refresh stream at once, in both decode modes.
func TestStreamRecoveryPointMeansIntraRefresh(t *testing.T) {
	for _, mode := range []string{config.DecodeKeyframe, config.DecodeAll} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			srv := serve(t, rtsptest.Options{}, map[string]*rtsptest.Media{"cam": intraRefreshClip(t, 50)})
			var logs testutil.SyncBuffer
			s := startStream(t, cameraConfig(t, fmt.Sprintf("name: cam\ntimeout: 1s\ndecode: %s\nurl: %s", mode, srv.URL("cam"))), &logs)

			stats := analyzeWhenReady(t, s)
			if math.Abs(stats.Brightness-64.0/255) > 0.01 {
				t.Errorf("brightness = %.4f, want %.4f", stats.Brightness, 64.0/255)
			}
			if !strings.Contains(logs.String(), `evidence="recovery point SEI"`) {
				t.Errorf("intra refresh not told from its recovery points:\n%s", logs.String())
			}
			if n := s.Status().DecodeErrors; n != 0 {
				t.Errorf("%d decode errors, want 0", n)
			}
		})
	}
}

// TestStreamKeyframesAgain: a camera that sends key frames again after a
// stretch of intra refresh goes back to key frame mode, once.
func TestStreamKeyframesAgain(t *testing.T) {
	media := intraRefreshClip(t, 100)
	// Then 2 s with a key frame each second.
	media.AccessUnits = append(media.AccessUnits, rtsptest.Clip(t, rtsptest.H264, gray64, 50).AccessUnits...)
	srv := serve(t, rtsptest.Options{}, map[string]*rtsptest.Media{"cam": media})
	var logs testutil.SyncBuffer
	s := startStream(t, cameraConfig(t, "name: cam\ntimeout: 1s\nurl: "+srv.URL("cam")), &logs)

	const back = "Key frames again, back to decoding key frames only"
	testutil.WaitFor(t, "key frame mode again", 15*time.Second, func() bool { return strings.Contains(logs.String(), back) })
	if !strings.Contains(logs.String(), "decoding every frame") {
		t.Errorf("never decoded every frame:\n%s", logs.String())
	}
	keyframes := s.Status().KeyframesReceived
	// The next may come after the 4 s of intra refresh.
	testutil.WaitFor(t, "another key frame", 10*time.Second, func() bool { return s.Status().KeyframesReceived > keyframes })
	if n := strings.Count(logs.String(), back); n != 1 {
		t.Errorf("logged %d times that key frames came again, want once:\n%s", n, logs.String())
	}
	stats := analyzeWhenReady(t, s)
	if math.Abs(stats.Brightness-64.0/255) > 0.005 {
		t.Errorf("brightness = %.4f, want %.4f", stats.Brightness, 64.0/255)
	}
	if n := s.Status().DecodeErrors; n != 0 {
		t.Errorf("%d decode errors, want 0", n)
	}
}
