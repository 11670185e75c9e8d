package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
	"github.com/camera-exporter/camera_exporter/drift"
	"github.com/camera-exporter/camera_exporter/imagestats"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
)

// TestCameraPages runs the exporter with snapshots behind a web config's
// basic auth, against a camera showing a person, a gray one and a dead
// one, and checks the pages, the pictures and the detector's boxes on
// them.
func TestCameraPages(t *testing.T) {
	srv, err := rtsptest.Start(rtsptest.Options{}, map[string]*rtsptest.Media{
		"person": rtsptest.Photo(t, filepath.Join(sharedImages, "person.jpg")),
		"gray":   rtsptest.Clip(t, rtsptest.H264, "color=c=gray:s=320x240:r=25", 25),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	const user, pass = "operator", "s3cret-pages"
	hash, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webConfig := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(webConfig, fmt.Appendf(nil, "basic_auth_users:\n  %s: %s\n", user, hash), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testutil.DetectorBlock(t, "") + fmt.Sprintf(`defaults:
  detect:
    classes: [person]
cameras:
  - name: person
    url: %s
  - name: gray
    url: %s
  - name: dead
    url: rtsp://%s/stream
    timeout: 2s
`, srv.URL("person"), srv.URL("gray"), testutil.FreeAddr(t))
	e := startExporter(t, cfg, "--web.enable-snapshots", "--web.config.file="+webConfig, "--web.external-url=https://box-1.example/camera/")

	get := func(path string, auth bool) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, "http://"+e.addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, body
	}
	for _, path := range []string{"/cameras", "/cameras/person", "/cameras/person/snapshot.jpg"} {
		if status, _ := get(path, false); status != http.StatusUnauthorized {
			t.Errorf("%s without credentials: %d, want 401", path, status)
		}
	}
	// The pages show what scrapes analyzed.
	testutil.WaitFor(t, "a person detected", 60*time.Second, func() bool {
		_, metrics := get("/metrics", true)
		return strings.Contains(string(metrics), `camera_detected_objects{camera="person",class="person"} 1`) &&
			strings.Contains(string(metrics), `camera_frame_analysis_success{camera="gray"} 1`)
	})

	if _, metrics := get("/metrics", true); !strings.Contains(string(metrics), `camera_exporter_external_url_info{url="https://box-1.example/camera"} 1`) {
		t.Errorf("no camera_exporter_external_url_info in\n%s", metrics)
	}

	status, body := get("/cameras", true)
	if status != http.StatusOK {
		t.Fatalf("/cameras: %d", status)
	}
	for _, want := range []string{`id="camera-person"`, `id="camera-gray"`, `id="camera-dead"`, "person 1",
		`<span class="state down">down</span>`, `src="/cameras/person/snapshot.jpg"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/cameras has no %q:\n%s", want, body)
		}
	}
	if _, landing := get("/", true); !strings.Contains(string(landing), `href="/cameras"`) {
		t.Errorf("the landing page does not link /cameras:\n%s", landing)
	}
	if status, _ := get("/cameras/nope", true); status != http.StatusNotFound {
		t.Errorf("/cameras/nope: %d, want 404", status)
	}

	// The boxes are the only difference between the two pictures.
	picture := func(path string) image.Image {
		t.Helper()
		status, b := get(path, true)
		if status != http.StatusOK {
			t.Fatalf("%s: %d: %s", path, status, b)
		}
		img, err := jpeg.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return img
	}
	boxed, bare := picture("/cameras/person/snapshot.jpg"), picture("/cameras/person/snapshot.jpg?boxes=0")
	if boxed.Bounds() != bare.Bounds() || boxed.Bounds().Dx() > 480 {
		t.Fatalf("snapshots of %v and %v, want one size, at most 480 wide", boxed.Bounds(), bare.Bounds())
	}
	if n, m := boxPixels(boxed), boxPixels(bare); n < 100 || n < 10*m {
		t.Errorf("%d pixels of the box color with boxes, %d without: want the person's box drawn", n, m)
	}
	if n := boxPixels(picture("/cameras/gray/snapshot.jpg")); n != 0 {
		t.Errorf("%d pixels of the box color on the gray camera, where nothing was found", n)
	}
	if w := picture("/cameras/gray/snapshot.jpg?width=100").Bounds().Dx(); w != 100 {
		t.Errorf("snapshot?width=100 is %d wide", w)
	}
	if status, _ := get("/cameras/dead/snapshot.jpg", true); status != http.StatusNotFound {
		t.Errorf("snapshot of the dead camera: %d, want 404", status)
	}

	// Pictures asked for at once, each at its own width so that each is
	// drawn, wait their turn for a few drawing slots, and all come; a
	// scrape meanwhile answers.
	widths := make([]int, 40)
	var wg sync.WaitGroup
	for i := range widths {
		wg.Go(func() {
			widths[i] = pictureWidth("http://"+e.addr+fmt.Sprintf("/cameras/person/snapshot.jpg?width=%d", 100+i), user, pass)
		})
	}
	status, metrics := get("/metrics", true)
	wg.Wait()
	if status != http.StatusOK || !strings.Contains(string(metrics), `camera_up{camera="person"} 1`) {
		t.Errorf("/metrics while pictures are drawn: %d\n%s", status, metrics)
	}
	for i, w := range widths {
		if w != 100+i {
			t.Errorf("snapshot.jpg?width=%d among 40 at once: %d wide, want it drawn in its turn", 100+i, w)
		}
	}
}

// TestAbsurdReference checks that a reference of a picture of absurd
// proportions, which a camera sending a legal 16x16384 picture calibrated
// before views were bounded, is refused with an error naming its file, is
// left as it is, and draws nothing.
func TestAbsurdReference(t *testing.T) {
	srv, err := rtsptest.Start(rtsptest.Options{}, map[string]*rtsptest.Media{
		"gray": rtsptest.Clip(t, rtsptest.H264, "color=c=gray:s=320x240:r=25", 25),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	b := drift.NewBuilder(true)
	for range drift.MinSamples {
		b.Add(drift.Sample{Stats: imagestats.Stats{Width: 320, Height: 240, Signature: make([]uint8, imagestats.SignatureWidth*imagestats.SignatureHeight)}})
	}
	ref := b.Profile("calibration", time.Now())
	ref.Width, ref.Height = 16, 16384
	data, err := json.Marshal(ref)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "gray.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	e := startExporter(t, fmt.Sprintf("defaults:\n  reference:\n    dir: %s\ncameras:\n  - name: gray\n    url: %s\n", dir, srv.URL("gray")))
	testutil.WaitFor(t, "the camera analyzed", 30*time.Second, func() bool {
		m, _ := e.get("/metrics", nil)
		return strings.Contains(m, `camera_frame_analysis_success{camera="gray"} 1`)
	})
	if logs := e.logs.String(); !strings.Contains(logs, path) || !strings.Contains(logs, "picture size 16x16384: proportions beyond 10:1") {
		t.Errorf("no error naming %s and its picture size in the log:\n%s", path, logs)
	}
	if _, err := e.get("/cameras/gray/reference.jpg?width=16", nil); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("reference.jpg of the refused reference: %v, want 404", err)
	}
	if kept, err := os.ReadFile(path); err != nil || !bytes.Equal(kept, data) {
		t.Errorf("the refused reference was changed: %v", err)
	}
}

// pictureWidth is the width of the JPEG at url, or the negated HTTP status
// or -1 on another error.
func pictureWidth(url, user, pass string) int {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return -1
	}
	req.SetBasicAuth(user, pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return -resp.StatusCode
	}
	img, err := jpeg.Decode(resp.Body)
	if err != nil {
		return -1
	}
	return img.Bounds().Dx()
}

// boxPixels counts the pixels of the boxes' color.
func boxPixels(img image.Image) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r>>8 > 220 && g>>8 > 170 && g>>8 < 230 && bl>>8 < 70 {
				n++
			}
		}
	}
	return n
}

// TestNoSnapshotsByDefault checks that a camera's picture is not served
// unless --web.enable-snapshots is given.
func TestNoSnapshotsByDefault(t *testing.T) {
	srv, err := rtsptest.Start(rtsptest.Options{}, map[string]*rtsptest.Media{
		"gray": rtsptest.Clip(t, rtsptest.H264, "color=c=gray:s=320x240:r=25", 25),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	e := startExporter(t, "cameras:\n  - name: gray\n    url: "+srv.URL("gray")+"\n")
	testutil.WaitFor(t, "the camera analyzed", 30*time.Second, func() bool {
		m, _ := e.get("/metrics", nil)
		return strings.Contains(m, `camera_frame_analysis_success{camera="gray"} 1`)
	})
	if _, err := e.get("/cameras/gray/snapshot.jpg", nil); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("snapshot.jpg without --web.enable-snapshots: %v, want 404", err)
	}
	if page, err := e.get("/cameras/gray", nil); err != nil || strings.Contains(page, "snapshot.jpg") {
		t.Errorf("/cameras/gray without snapshots: %v, links a snapshot:\n%s", err, page)
	}
}
