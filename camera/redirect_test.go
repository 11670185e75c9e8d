package camera_test

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
)

// secretForms are the ways a password can travel in a request.
func secretForms(user, pass string) []string {
	return []string{
		pass,
		url.QueryEscape(pass),
		url.PathEscape(pass),
		url.UserPassword(user, pass).String(),
		base64.StdEncoding.EncodeToString([]byte(user + ":" + pass)),
		base64.StdEncoding.EncodeToString([]byte(pass)),
	}
}

func startFake(t testing.TB, handler func(rtsptest.FakeRequest) rtsptest.FakeResponse) *rtsptest.Fake {
	t.Helper()
	f, err := rtsptest.StartFake(handler)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

// redirectTo answers DESCRIBE with a redirect to location.
func redirectTo(location string) func(rtsptest.FakeRequest) rtsptest.FakeResponse {
	return func(req rtsptest.FakeRequest) rtsptest.FakeResponse {
		if req.Method == "DESCRIBE" {
			return rtsptest.FakeResponse{Status: http.StatusFound, Header: map[string][]string{"Location": {location}}}
		}
		return rtsptest.FakePlay(req)
	}
}

func count(reqs []rtsptest.FakeRequest, method string) int {
	n := 0
	for _, req := range reqs {
		if req.Method == method {
			n++
		}
	}
	return n
}

// TestStreamRedirectLoop checks that a camera redirecting to itself fails
// the session after a few redirects, where gortsplib would recurse until
// the process ran out of memory.
func TestStreamRedirectLoop(t *testing.T) {
	var f *rtsptest.Fake
	f = startFake(t, func(req rtsptest.FakeRequest) rtsptest.FakeResponse {
		return redirectTo(f.URL("cam"))(req)
	})
	var logs testutil.SyncBuffer
	s := startStream(t, cameraConfig(t, "name: cam\nurl: "+f.URL("cam")), &logs)
	testutil.WaitFor(t, "the session to fail", 15*time.Second, func() bool {
		return strings.Contains(logs.String(), "too many redirects (5)") && s.Status().Reconnects[camera.ReasonRedirectLimit] > 0
	})
	if s.Up(time.Now()) {
		t.Error("camera up while it redirects in a loop")
	}
	s.Stop()
	// The first session, the one in flight at Stop, and those between.
	sessions := strings.Count(logs.String(), "Camera session ended") + 1
	if n := count(f.Requests(), "DESCRIBE"); n > 6*sessions {
		t.Errorf("%d DESCRIBEs in %d sessions, want at most 6 each", n, sessions)
	}
}

// TestStreamRedirectToOtherHost checks that a redirect to another host:port
// is not followed with the credentials, in any encoding.
func TestStreamRedirectToOtherHost(t *testing.T) {
	const pass = "p@ss:w0rd/é"
	thief := startFake(t, rtsptest.FakeAuth(rtsptest.FakeBasic, "viewer", pass, rtsptest.FakePlay))
	f := startFake(t, redirectTo(thief.URL("cam")))
	var logs testutil.SyncBuffer
	s := startStream(t, cameraConfig(t, "name: cam\nusername: viewer\npassword: "+`"`+pass+`"`+"\nurl: "+f.URL("cam")), &logs)
	testutil.WaitFor(t, "the session to fail", 15*time.Second, func() bool {
		return strings.Contains(logs.String(), "redirected to "+thief.Addr)
	})
	if s.Up(time.Now()) {
		t.Error("camera up while it redirects elsewhere")
	}
	s.Stop()
	for _, req := range thief.Requests() {
		for _, secret := range secretForms("viewer", pass) {
			if strings.Contains(req.URL, secret) || strings.Contains(string(req.Body), secret) || strings.Contains(strings.Join(req.Header.Values("Authorization"), " "), secret) {
				t.Errorf("redirect target got the password in %s %s", req.Method, req.URL)
			}
		}
	}
	if strings.Contains(logs.String(), pass) {
		t.Error("logs have the password")
	}
}

// TestStreamRedirectWithoutCredentials checks that a camera without
// credentials still follows a redirect to another host.
func TestStreamRedirectWithoutCredentials(t *testing.T) {
	target := startFake(t, rtsptest.FakePlay)
	f := startFake(t, redirectTo(target.URL("cam")))
	var logs testutil.SyncBuffer
	startStream(t, cameraConfig(t, "name: cam\nurl: "+f.URL("cam")), &logs)
	testutil.WaitFor(t, "the session to start", 15*time.Second, func() bool {
		return strings.Contains(logs.String(), "Camera session started")
	})
}
