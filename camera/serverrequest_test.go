package camera_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
)

// TestStreamServerRequest checks that a camera's GET_PARAMETER or
// SET_PARAMETER during PLAY is answered 200 with its CSeq and keeps the
// session, which gortsplib alone tore down as an unhandled method, and
// that other requests of the camera still end it.
func TestStreamServerRequest(t *testing.T) {
	for _, tc := range []struct {
		method, body string
		kept         bool
	}{
		{method: "GET_PARAMETER", kept: true},
		{method: "SET_PARAMETER", body: "barparam: barstuff\r\n", kept: true},
		{method: "ANNOUNCE"},
	} {
		t.Run(tc.method, func(t *testing.T) {
			t.Parallel()
			var f *rtsptest.Fake
			f = startFake(t, func(req rtsptest.FakeRequest) rtsptest.FakeResponse {
				res := rtsptest.FakePlay(req)
				if req.Method == "PLAY" {
					res.Then = []string{tc.method + " " + f.URL("cam") + " RTSP/1.0\r\nCSeq: 77\r\nSession: fake\r\n" +
						"Content-Type: text/parameters\r\nContent-Length: " + strconv.Itoa(len(tc.body)) + "\r\n\r\n" + tc.body}
				}
				return res
			})
			var logs testutil.SyncBuffer
			// No video comes: the timeout outlasts what the test observes.
			startStream(t, cameraConfig(t, "name: cam\ntimeout: 10s\nurl: "+f.URL("cam")), &logs)
			if !tc.kept {
				testutil.WaitFor(t, "the session to end", 5*time.Second, func() bool {
					return strings.Contains(logs.String(), "Camera session ended")
				})
				return
			}
			testutil.WaitFor(t, "the response to the camera's request", 5*time.Second, func() bool {
				return count(f.Requests(), rtsptest.FakeResponseMethod) > 0
			})
			time.Sleep(3 * time.Second)
			reqs := f.Requests()
			for _, req := range reqs {
				if req.Method == rtsptest.FakeResponseMethod && (req.URL != "200 OK" || req.Header.Get("CSeq") != "77") {
					t.Errorf("response %q, CSeq %q, want 200 OK, CSeq 77", req.URL, req.Header.Get("CSeq"))
				}
			}
			if n := count(reqs, "TEARDOWN"); n > 0 {
				t.Errorf("%d TEARDOWNs, want none", n)
			}
			if n := count(reqs, "DESCRIBE"); n != 1 {
				t.Errorf("%d DESCRIBEs, want 1", n)
			}
			if strings.Contains(logs.String(), "Camera session ended") {
				t.Errorf("session ended:\n%s", logs.String())
			}
		})
	}
}
