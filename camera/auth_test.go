package camera_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
)

const basicWarning = "Camera accepts only Basic authentication over plain RTSP"

// TestStreamAuthDigestRefusesBasic checks that with auth: digest a camera
// offering only Basic never gets the password.
func TestStreamAuthDigestRefusesBasic(t *testing.T) {
	const pass = "s3cret:pw"
	f := startFake(t, rtsptest.FakeAuth(rtsptest.FakeBasic, "viewer", pass, rtsptest.FakePlay))
	var logs testutil.SyncBuffer
	s := startStream(t, cameraConfig(t, "name: cam\nauth: digest\nusername: viewer\npassword: "+pass+"\nurl: "+f.URL("cam")), &logs)
	testutil.WaitFor(t, "the session to fail", 15*time.Second, func() bool {
		return strings.Contains(logs.String(), "camera offers only Basic authentication") && s.Status().Reconnects[camera.ReasonAuth] > 0
	})
	if s.Up(time.Now()) {
		t.Error("camera up")
	}
	s.Stop()
	for _, req := range f.Requests() {
		if v := req.Header.Values("Authorization"); len(v) > 0 {
			t.Errorf("%s sent Authorization %q", req.Method, v)
		}
	}
	if strings.Contains(logs.String(), pass) {
		t.Error("logs have the password")
	}
}

// TestStreamBasicOverPlainRTSPWarnsOnce checks that auth: any sends Basic,
// warning once however often the session reconnects.
func TestStreamBasicOverPlainRTSPWarnsOnce(t *testing.T) {
	authed := func(req rtsptest.FakeRequest) rtsptest.FakeResponse {
		if req.Method == "DESCRIBE" {
			return rtsptest.FakeResponse{Status: http.StatusNotFound} // ends the session, to reconnect
		}
		return rtsptest.FakePlay(req)
	}
	f := startFake(t, rtsptest.FakeAuth(rtsptest.FakeBasic, "viewer", "pw", authed))
	var logs testutil.SyncBuffer
	startStream(t, cameraConfig(t, "name: cam\nusername: viewer\npassword: pw\nurl: "+f.URL("cam")), &logs)
	testutil.WaitFor(t, "two sessions", 15*time.Second, func() bool {
		return strings.Count(logs.String(), "Camera session ended") >= 2
	})
	if n := strings.Count(logs.String(), basicWarning); n != 1 {
		t.Errorf("warning logged %d times, want once:\n%s", n, logs.String())
	}
	if count(f.Requests(), "DESCRIBE") < 2 {
		t.Error("camera never got past authentication")
	}
}

// TestStreamDigestQopAuth checks that a camera demanding Digest with
// qop="auth", as Dahua's do, authenticates the session.
func TestStreamDigestQopAuth(t *testing.T) {
	f := startFake(t, rtsptest.FakeAuth(rtsptest.FakeDigestQop, "admin", "pw:1", rtsptest.FakePlay))
	var logs testutil.SyncBuffer
	s := startStream(t, cameraConfig(t, "name: cam\nauth: digest\nusername: admin\npassword: \"pw:1\"\nurl: "+f.URL("cam")), &logs)
	testutil.WaitFor(t, "the session to start", 15*time.Second, func() bool {
		return s.Status().Connected
	})
	if strings.Contains(logs.String(), basicWarning) {
		t.Error("warned of Basic for a Digest camera")
	}
}
