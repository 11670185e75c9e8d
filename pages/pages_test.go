package pages

import (
	"bytes"
	"image"
	"image/jpeg"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/promslog"

	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/collector"
	"github.com/camera-exporter/camera_exporter/detector"
	"github.com/camera-exporter/camera_exporter/drift"
	"github.com/camera-exporter/camera_exporter/imagestats"
)

type fakeCameras []collector.Look

func (f fakeCameras) Looks() []collector.Look { return f }

func (f fakeCameras) Look(name string) (collector.Look, bool) {
	for _, l := range f {
		if l.Name == name {
			return l, true
		}
	}
	return collector.Look{}, false
}

// gray is a uniform mid-gray BGR picture.
func gray(w, h int) detector.Image {
	pix := bytes.Repeat([]byte{128}, 3*w*h)
	return detector.Image{Width: w, Height: h, Stride: 3 * w, Pix: pix}
}

// looks are three cameras: one analyzed with a person found in its
// 640x360 picture, kept at 320x180; one stalled; one down.
func looks() fakeCameras {
	now := time.Now()
	signature := make([]float32, imagestats.SignatureWidth*imagestats.SignatureHeight)
	for i := range signature {
		signature[i] = float32(i%imagestats.SignatureWidth) / imagestats.SignatureWidth
	}
	return fakeCameras{
		{
			Name:     "gate",
			Up:       true,
			Status:   camera.Status{Connected: true, Codec: camera.CodecH264, Width: 640, Height: 360, Transport: "tcp", LastFrame: now, FrameRate: 25},
			Analyzed: now, Seq: 7,
			Stats:   imagestats.Stats{Width: 640, Height: 360, Brightness: 0.5, DarkRatio: 0.25},
			Objects: map[string]int{"person": 1},
			// In the 640x360 picture: x 200-300, y 100-300.
			Detections: []detector.Detection{{Label: "person", Confidence: 0.87, Box: detector.Box{X: 200, Y: 100, Width: 100, Height: 200}}},
			Snapshot:   gray(320, 180),
			HasView:    true,
			View:       drift.Registration{ShiftX: 0.06, Scale: 1, MatchRatio: 0.9},
			Reference:  &drift.Profile{Frames: 120, Signature: signature, Width: 640, Height: 360},
			History:    []collector.Figures{{Analyzed: now, Brightness: 0.5, DarkRatio: 0.25, Objects: 1}},
		},
		{Name: "yard", Status: camera.Status{Connected: true, LastFrame: now.Add(-time.Minute)}},
		{Name: "tunnel", Status: camera.Status{LastEnded: "auth"}},
	}
}

func serve(t *testing.T, snapshots bool) *httptest.Server {
	t.Helper()
	h, err := New(Options{Cameras: looks(), Snapshots: snapshots, Logger: promslog.NewNopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string) (int, string, []byte) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, res.Header.Get("Content-Type"), body
}

func TestPages(t *testing.T) {
	srv := serve(t, true)
	for _, test := range []struct {
		path        string
		status      int
		contentType string
		want        []string // in the body
	}{
		{"/cameras", 200, "text/html; charset=utf-8", []string{
			`id="camera-gate"`, `id="camera-yard"`, `id="camera-tunnel"`,
			`<span class="state up">up</span>`, `<span class="state stalled">stalled</span>`, `<span class="state down">down</span>`,
			"h264 640x360 over tcp, 25.0 fps", "0.50, dark pixels 25.0%", "person 1", "shift x 6.0%", "last one ended with <em>auth</em>",
			`src="/cameras/gate/snapshot.jpg"`, `src="/cameras/gate/reference.jpg"`, "reference view (120 frames)",
		}},
		{"/cameras/gate", 200, "text/html; charset=utf-8", []string{`class="card large"`, "Latest analyses", "<td>25.0%</td>"}},
		{"/cameras/gate/snapshot.jpg", 200, "image/jpeg", nil},
		{"/cameras/gate/snapshot.jpg?boxes=0&width=100", 200, "image/jpeg", nil},
		{"/cameras/gate/reference.jpg?width=64", 200, "image/jpeg", nil},
		{"/cameras/nope", 404, "", nil},
		{"/cameras/nope/snapshot.jpg", 404, "", nil},
		{"/cameras/..%2Fetc", 404, "", nil},
		{"/cameras/yard/snapshot.jpg", 404, "", []string{"no analyzed picture yet"}},
		{"/cameras/yard/reference.jpg", 404, "", []string{"no reference view"}},
		{"/cameras/gate/snapshot.jpg?width=8", 400, "", []string{"width must be"}},
		{"/cameras/gate/snapshot.jpg?width=100000", 400, "", []string{"width must be"}},
		{"/cameras/gate/snapshot.jpg?width=x", 400, "", []string{"width must be"}},
		{"/cameras/gate/reference.jpg?width=5000", 400, "", []string{"width must be"}},
	} {
		status, contentType, body := get(t, srv.URL+test.path)
		if status != test.status || test.contentType != "" && contentType != test.contentType {
			t.Errorf("%s: %d %s, want %d %s: %s", test.path, status, contentType, test.status, test.contentType, body)
		}
		for _, want := range test.want {
			if !bytes.Contains(body, []byte(want)) {
				t.Errorf("%s: no %q in\n%s", test.path, want, body)
			}
		}
	}
}

// TestNoSnapshots checks that without --web.enable-snapshots no picture of
// a camera is served, nor linked.
func TestDecimals(t *testing.T) {
	for _, c := range []struct {
		v      float64
		digits int
		want   string
	}{{-0.0001, 1, "0.0"}, {-0.04, 1, "0.0"}, {-0.05, 1, "-0.1"}, {0.25, 2, "0.25"}, {-3, 0, "-3"}, {math.Copysign(0, -1), 0, "0"}} {
		if got := decimals(c.v, c.digits); got != c.want {
			t.Errorf("decimals(%v, %d) = %q, want %q", c.v, c.digits, got, c.want)
		}
	}
}

func TestNoSnapshots(t *testing.T) {
	srv := serve(t, false)
	if status, _, _ := get(t, srv.URL+"/cameras/gate/snapshot.jpg"); status != http.StatusNotFound {
		t.Errorf("snapshot.jpg: %d, want 404", status)
	}
	_, _, body := get(t, srv.URL+"/cameras")
	if strings.Contains(string(body), "snapshot.jpg") || !strings.Contains(string(body), "--web.enable-snapshots") {
		t.Errorf("/cameras links a snapshot, or does not say how to enable them:\n%s", body)
	}
}

func decodeJPEG(t *testing.T, b []byte) image.Image {
	t.Helper()
	img, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// isBox tells the box color from the gray picture, through JPEG's loss.
func isBox(img image.Image, x, y int) bool {
	r, g, b, _ := img.At(x, y).RGBA()
	return r>>8 > 200 && g>>8 > 160 && b>>8 < 90
}

// TestSnapshotBoxes checks that the detector's box is drawn where it found
// the object, scaled from the picture it ran on to the snapshot, and only
// there; and not at all with boxes=0.
func TestSnapshotBoxes(t *testing.T) {
	srv := serve(t, true)
	_, _, b := get(t, srv.URL+"/cameras/gate/snapshot.jpg")
	img := decodeJPEG(t, b)
	if got := img.Bounds().Size(); got != image.Pt(320, 180) {
		t.Fatalf("snapshot is %v, want the kept 320x180", got)
	}
	// The box, at half the 640x360 picture's scale: x 100-150, y 50-150.
	for _, p := range []image.Point{{100, 100}, {149, 100}, {125, 50}, {125, 149}} {
		if !isBox(img, p.X, p.Y) {
			t.Errorf("no box color at %v: %v", p, img.At(p.X, p.Y))
		}
	}
	for _, p := range []image.Point{{125, 100}, {60, 100}, {200, 100}, {125, 170}} {
		if isBox(img, p.X, p.Y) {
			t.Errorf("box color at %v, away from the box", p)
		}
	}
	_, _, b = get(t, srv.URL+"/cameras/gate/snapshot.jpg?boxes=0&width=160")
	bare := decodeJPEG(t, b)
	if got := bare.Bounds().Size(); got != image.Pt(160, 90) {
		t.Errorf("snapshot?width=160 is %v, want 160x90", got)
	}
	for y := range 90 {
		for x := range 160 {
			if isBox(bare, x, y) {
				t.Fatalf("boxes=0 has the box color at %d,%d", x, y)
			}
		}
	}
	// Never wider than the kept picture.
	_, _, b = get(t, srv.URL+"/cameras/gate/snapshot.jpg?width=1000")
	if got := decodeJPEG(t, b).Bounds().Dx(); got != 320 {
		t.Errorf("snapshot?width=1000 is %d wide, want the kept 320", got)
	}
}

// TestSnapshotCached checks that a picture is encoded once per analyzed
// frame and size, whoever asks.
func TestSnapshotCached(t *testing.T) {
	var c cache
	c.entries = map[string]cached{}
	made := 0
	produce := func() ([]byte, error) { made++; return []byte{byte(made)}, nil }
	for _, key := range []cacheKey{{seq: 1, boxes: true, width: 320}, {seq: 1, boxes: true, width: 320}, {seq: 2, boxes: true, width: 320}, {seq: 2, boxes: true, width: 320}} {
		if _, err := c.get("gate", key, produce); err != nil {
			t.Fatal(err)
		}
	}
	if made != 2 {
		t.Errorf("made %d pictures for 2 frames", made)
	}
	c.forget(map[string]bool{"yard": true})
	if len(c.entries) != 0 {
		t.Errorf("a removed camera's picture is kept")
	}
}

func BenchmarkSnapshot(b *testing.B) {
	l := looks()[0]
	l.Snapshot = gray(SnapshotWidth, SnapshotWidth*9/16)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := render(l.Snapshot, l.Detections, l.Stats.Width, l.Stats.Height, true, SnapshotWidth); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSnapshotRequest is a request of a picture already encoded for
// the camera's analyzed frame, as a page's second viewer makes it.
func BenchmarkSnapshotRequest(b *testing.B) {
	h, err := New(Options{Cameras: looks(), Snapshots: true, Logger: promslog.NewNopLogger()})
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	req := httptest.NewRequest(http.MethodGet, "/cameras/gate/snapshot.jpg", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
	}
}
