package pages

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/promslog"

	"github.com/camera-exporter/camera_exporter/analysis"
	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/detector"
	"github.com/camera-exporter/camera_exporter/drift"
	"github.com/camera-exporter/camera_exporter/imagestats"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
	"github.com/camera-exporter/camera_exporter/video"
)

type fakeCameras []analysis.Look

func (f fakeCameras) Looks() []analysis.Look { return f }

func (f fakeCameras) Look(name string) (analysis.Look, bool) {
	for _, l := range f {
		if l.Name == name {
			return l, true
		}
	}
	return analysis.Look{}, false
}

// gray is a uniform mid-gray BGR picture.
func gray(w, h int) video.Image {
	pix := bytes.Repeat([]byte{128}, 3*w*h)
	return video.Image{Width: w, Height: h, Stride: 3 * w, Pix: pix}
}

// looks are seven cameras: one analyzed with a person found in its
// 640x360 picture, kept at 320x180; one stalled; one down; one whose
// picture is frozen; one whose uniform picture does not change; one whose
// latest analysis failed; one up and not analyzed yet.
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
			Status:   camera.Status{Connected: true, Codec: video.CodecH264, Width: 640, Height: 360, Transport: "tcp", LastFrame: now, FrameRate: 25},
			Analyzed: now, Seq: 7,
			Stats:   imagestats.Stats{Width: 640, Height: 360, Brightness: 0.5, DarkRatio: 0.25},
			Objects: map[string]int{"person": 1},
			// In the 640x360 picture: x 200-300, y 100-300.
			Detections: []detector.Detection{{Label: "person", Confidence: 0.87, Box: detector.Box{X: 200, Y: 100, Width: 100, Height: 200}}},
			Snapshot:   gray(320, 180),
			HasView:    true,
			View:       drift.Registration{ShiftX: 0.04, Scale: 1, MatchRatio: 0.9},
			Reference:  &drift.Profile{Frames: 120, Signature: signature, Width: 640, Height: 360},
			History:    []analysis.Figures{{Analyzed: now, Brightness: 0.5, DarkRatio: 0.25, Objects: 1}},
		},
		{Name: "yard", Status: camera.Status{Connected: true, LastFrame: now.Add(-time.Minute)}},
		{Name: "tunnel", Status: camera.Status{LastEnded: "auth"}},
		{
			Name: "dock", Up: true, Status: camera.Status{Connected: true, LastFrame: now},
			Analyzed: now, Stats: imagestats.Stats{Contrast: 0.2},
			HasFrozen: true, Frozen: true,
		},
		{
			Name: "lid", Up: true, Status: camera.Status{Connected: true, LastFrame: now},
			Analyzed: now, HasFrozen: true, Frozen: true,
		},
		{
			Name: "shed", Up: true, Status: camera.Status{Connected: true, LastFrame: now},
			Analyzed: now.Add(-10 * time.Minute), HasFrozen: true, Frozen: true, Stats: imagestats.Stats{Contrast: 0.2},
			Failed: now.Add(-10 * time.Second), Err: "decoding: <invalid data>",
		},
		{Name: "annex", Up: true, Status: camera.Status{Connected: true, LastFrame: now}},
	}
}

// handler serves the pages of cameras.
func handler(t testing.TB, cameras fakeCameras, snapshots bool) (*Handler, *http.ServeMux) {
	t.Helper()
	h, err := New(Options{Cameras: cameras, Snapshots: snapshots, Logger: promslog.NewNopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	return h, mux
}

func serve(t *testing.T, snapshots bool) *httptest.Server {
	t.Helper()
	_, mux := handler(t, looks(), snapshots)
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
			`<span class="state frozen">frozen</span>`,
			"h264 640x360 over tcp, 25.0 fps", "0.50, dark pixels 25.0%", "person 1", "shift x 4.0%", "last one ended with <em>auth</em>",
			`src="/cameras/gate/snapshot.jpg"`, `src="/cameras/gate/reference.jpg"`, "reference view (120 frames)",
		}},
		{"/cameras/gate", 200, "text/html; charset=utf-8", []string{`class="card large"`, "Latest analyses", "<td>25.0%</td>"}},
		{"/cameras/dock", 200, "text/html; charset=utf-8", []string{`<span class="state frozen">frozen</span>`, "<strong>frozen</strong>"}},
		// As CameraFrozen, which a uniform picture does not fire.
		{"/cameras/shed", 200, "text/html; charset=utf-8", []string{`<span class="state analysis-failing">analysis failing</span>`,
			"frames arriving; the latest analysis failed 10s ago: <em>decoding: &lt;invalid data&gt;</em>", "analyzed</th><td>10m ago"}},
		{"/cameras/annex", 200, "text/html; charset=utf-8", []string{`<span class="state up">up</span>`, "not analyzed yet"}},
		{"/cameras/lid", 200, "text/html; charset=utf-8", []string{`<span class="state up">up</span>`, "unchanging, but too uniform to tell it frozen"}},
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

// TestNoSnapshots checks that without --web.enable-snapshots no picture of
// a camera is served, nor linked.
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

// TestState checks the badge's state: the worst of the camera's current
// states, the picture's read with the shipped alerts' thresholds, and an
// analysis failing only when its latest attempt failed.
func TestState(t *testing.T) {
	now := time.Now()
	up := func(edit func(l *analysis.Look)) analysis.Look {
		l := analysis.Look{Up: true, Status: camera.Status{Connected: true, LastFrame: now},
			Analyzed: now.Add(-10 * time.Second), Stats: imagestats.Stats{Contrast: 0.2},
			HasFrozen: true, HasView: true, View: drift.Registration{Scale: 1, MatchRatio: 0.9}}
		if edit != nil {
			edit(&l)
		}
		return l
	}
	frozen := func(l *analysis.Look) { l.Frozen = true }
	neverAnalyzed := func(l *analysis.Look) {
		l.Analyzed, l.HasFrozen, l.HasView, l.Stats, l.View = time.Time{}, false, false, imagestats.Stats{}, drift.Registration{}
	}
	failed := func(err string) func(l *analysis.Look) {
		return func(l *analysis.Look) { l.Failed, l.Err = now.Add(-5*time.Second), err }
	}
	for _, tc := range []struct {
		name string
		look analysis.Look
		want cameraState
	}{
		{"up", up(nil), stateUp},
		{"down", analysis.Look{Status: camera.Status{LastEnded: "auth"}}, stateDown},
		{"down, frozen before", up(func(l *analysis.Look) { l.Up, l.Status.Connected, l.Frozen = false, false, true }), stateDown},
		{"stalled", up(func(l *analysis.Look) { l.Up = false }), stateStalled},
		{"frozen", up(frozen), stateFrozen},
		{"frozen, no contrast", up(func(l *analysis.Look) { l.Frozen, l.Stats.Contrast = true, 0.01 }), stateUp},
		{"frozen, contrast at the threshold", up(func(l *analysis.Look) { l.Frozen, l.Stats.Contrast = true, 0.02 }), stateFrozen},
		{"frozen and moved", up(func(l *analysis.Look) { l.Frozen, l.View.ShiftX = true, 0.2 }), stateFrozen},
		{"shift x at the threshold", up(func(l *analysis.Look) { l.View.ShiftX = 0.05 }), stateUp},
		{"moved right", up(func(l *analysis.Look) { l.View.ShiftX = 0.051 }), stateMoved},
		{"moved up", up(func(l *analysis.Look) { l.View.ShiftY = -0.06 }), stateMoved},
		{"zoomed in", up(func(l *analysis.Look) { l.View.Scale = 1.11 }), stateMoved},
		{"zoomed out", up(func(l *analysis.Look) { l.View.Scale = 0.89 }), stateMoved},
		{"zoom within 10%", up(func(l *analysis.Look) { l.View.Scale = 1.09 }), stateUp},
		{"moved and obstructed", up(func(l *analysis.Look) { l.View.ShiftX, l.View.MatchRatio = 0.1, 0.3 }), stateMoved},
		{"obstructed", up(func(l *analysis.Look) { l.View.MatchRatio = 0.64 }), stateObstructed},
		{"match at the threshold", up(func(l *analysis.Look) { l.View.MatchRatio = 0.65 }), stateUp},
		{"no view, no frozen figures", up(func(l *analysis.Look) { l.HasView, l.HasFrozen, l.View = false, false, drift.Registration{} }), stateUp},
		{"never analyzed", up(neverAnalyzed), stateUp},
		// A configured camera watched only through /probe?target=: the
		// probe's session analyzes, the pages' collector never does.
		{"probed only, for an hour", up(func(l *analysis.Look) {
			neverAnalyzed(l)
			l.Status.FramesReceived, l.Status.Reconnects[camera.ReasonClosed] = 90000, 0
		}), stateUp},
		// Added by a reload hours after the exporter started, up for a second.
		{"added by a reload", up(func(l *analysis.Look) { neverAnalyzed(l); l.Status.FramesReceived = 25 }), stateUp},
		// Back after an hour down: its latest analysis an hour old, and good.
		{"back after an hour down", up(func(l *analysis.Look) {
			l.Analyzed, l.Status.Reconnects[camera.ReasonRefused] = now.Add(-time.Hour), 120
		}), stateUp},
		{"detector failing", up(failed("detecting objects: forward pass failed")), stateAnalysisFailing},
		{"decoding failing", up(failed("decoding: invalid data")), stateAnalysisFailing},
		{"cut off at the deadline", up(failed("analysis still running at the scrape's deadline")), stateAnalysisFailing},
		{"failing, frozen before", up(func(l *analysis.Look) { failed("decoding: invalid data")(l); l.Frozen = true }), stateAnalysisFailing},
		{"failing, never analyzed", up(func(l *analysis.Look) { neverAnalyzed(l); failed("decoding: invalid data")(l) }), stateAnalysisFailing},
		{"stalled, analysis failed", up(func(l *analysis.Look) { l.Up = false; failed("decoding: invalid data")(l) }), stateStalled},
		{"down, analysis failed", up(func(l *analysis.Look) { l.Up, l.Status.Connected = false, false; failed("decoding: invalid data")(l) }), stateDown},
	} {
		if got := state(tc.look); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if c := stateAnalysisFailing.Class(); c != "analysis-failing" {
		t.Errorf("class %q", c)
	}
	for _, s := range []cameraState{stateDown, stateStalled, stateFrozen, stateMoved, stateObstructed, stateUp} {
		if s.AnalysisFailing() {
			t.Errorf("%q reads analysis failing", s)
		}
	}
	if !stateAnalysisFailing.AnalysisFailing() {
		t.Errorf("%q does not read analysis failing", stateAnalysisFailing)
	}
}

// TestStateThresholds checks that the badge's thresholds are the shipped
// alerts'.
func TestStateThresholds(t *testing.T) {
	alerts, err := os.ReadFile("../deploy/prometheus/rules/camera_exporter.alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		fmt.Sprintf("camera_frame_frozen == 1 and camera_frame_contrast_ratio >= %v", frozenMinContrast),
		fmt.Sprintf("max without (axis) (abs(camera_view_shift_ratio)) > %v", movedShift),
		fmt.Sprintf("abs(camera_view_scale_ratio - 1) > %v", movedZoom),
		fmt.Sprintf("camera_view_match_ratio < %v", obstructedMatch),
	} {
		if !strings.Contains(string(alerts), want) {
			t.Errorf("the shipped alerts have no %q: the badge's threshold differs", want)
		}
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

// TestPictureBounds checks that every picture the pages draw is bounded,
// on each side and in all, whatever the proportions of the camera's
// picture or reference, at the widths asked for: a camera sending a legal
// 16x16384 picture calibrated a reference that drew 1920x1966080.
func TestPictureBounds(t *testing.T) {
	signature := looks()[0].Reference.Signature
	reference := func(name string, w, h int) analysis.Look {
		return analysis.Look{Name: name, Reference: &drift.Profile{Frames: 60, Signature: signature, Width: w, Height: h}}
	}
	snapshot := func(name string, w, h int) analysis.Look {
		return analysis.Look{Name: name, Seq: 1, Snapshot: gray(w, h), Stats: imagestats.Stats{Width: w, Height: h}}
	}
	_, mux := handler(t, fakeCameras{
		reference("sliver", 16, 16384), reference("strip", 16384, 16), reference("square", 1000, 1000),
		reference("hd", 640, 360), reference("old", 0, 0),
		snapshot("tall", 16, 16384), snapshot("kept", 480, 270),
	}, true)
	for _, tc := range []struct {
		path string
		want image.Point
	}{
		// First: on a page drawing without bounds, the cheapest to fail.
		{"/cameras/sliver/reference.jpg?width=16", image.Pt(1, 1024)},
		{"/cameras/sliver/reference.jpg", image.Pt(1, 1024)},
		{"/cameras/sliver/reference.jpg?width=1920", image.Pt(1, 1024)},
		{"/cameras/tall/snapshot.jpg", image.Pt(1, 1024)},
		{"/cameras/tall/snapshot.jpg?width=16", image.Pt(1, 1024)},
		{"/cameras/strip/reference.jpg?width=1920", image.Pt(1920, 2)},
		{"/cameras/square/reference.jpg?width=1920", image.Pt(1662, 1662)},
		{"/cameras/hd/reference.jpg?width=1920", image.Pt(1920, 1080)},
		{"/cameras/hd/reference.jpg?width=100", image.Pt(100, 56)},
		{"/cameras/old/reference.jpg?width=320", image.Pt(320, 180)},
		{"/cameras/kept/snapshot.jpg?width=1920", image.Pt(480, 270)},
		{"/cameras/kept/snapshot.jpg?width=160", image.Pt(160, 90)},
	} {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest(http.MethodGet, tc.path, nil))
		if w.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", tc.path, w.Code, w.Body)
		}
		size := decodeJPEG(t, w.Body.Bytes()).Bounds().Size()
		if size != tc.want || size.X > maxPictureSide || size.Y > maxPictureSide || size.X*size.Y > maxPicturePixels {
			t.Fatalf("%s is %v, want %v: within %dx%d and %d pixels", tc.path, size, tc.want, maxPictureSide, maxPictureSide, maxPicturePixels)
		}
	}
}

// TestPicturesWait checks that pictures are drawn a few at a time: a
// request beyond the drawing slots waits in line while the pages answer,
// and is drawn once a slot frees; one whose client leaves, or that finds
// the line full, is answered 503.
func TestPicturesWait(t *testing.T) {
	h, mux := handler(t, looks(), true)
	for range cap(h.drawing) {
		h.drawing <- struct{}{} // every slot taken
	}
	request := func(ctx context.Context, path string) <-chan *httptest.ResponseRecorder {
		done := make(chan *httptest.ResponseRecorder, 1)
		go func() {
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, httptest.NewRequestWithContext(ctx, http.MethodGet, path, nil))
			done <- w
		}()
		return done
	}
	inLine := func(n int64) {
		t.Helper()
		testutil.WaitFor(t, fmt.Sprintf("%d requests in line", n), 10*time.Second, func() bool { return h.waiting.Load() == n })
	}

	reference, snapshot := request(t.Context(), "/cameras/gate/reference.jpg?width=100"), request(t.Context(), "/cameras/gate/snapshot.jpg?width=200")
	inLine(2)
	for _, path := range []string{"/cameras", "/cameras/gate"} {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		if w.Code != http.StatusOK {
			t.Errorf("%s while pictures wait: %d", path, w.Code)
		}
	}
	select {
	case w := <-reference:
		t.Fatalf("a picture beyond the %d drawing slots was answered at once: %d", cap(h.drawing), w.Code)
	case w := <-snapshot:
		t.Fatalf("a picture beyond the %d drawing slots was answered at once: %d", cap(h.drawing), w.Code)
	default:
	}
	<-h.drawing // a slot frees: both are drawn, one after the other
	for path, done := range map[string]<-chan *httptest.ResponseRecorder{"reference.jpg": reference, "snapshot.jpg": snapshot} {
		if w := <-done; w.Code != http.StatusOK || w.Header().Get("Content-Type") != "image/jpeg" {
			t.Errorf("%s once a slot freed: %d %s", path, w.Code, w.Body)
		}
	}
	h.drawing <- struct{}{}

	ctx, cancel := context.WithCancel(t.Context())
	gone := request(ctx, "/cameras/gate/reference.jpg?width=120")
	inLine(1)
	cancel()
	if w := <-gone; w.Code != http.StatusServiceUnavailable {
		t.Errorf("a request whose client left while in line: %d, want 503", w.Code)
	}
	inLine(0)

	h.waiting.Store(maxWaiting)
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/cameras/gate/reference.jpg?width=140", nil))
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "1" {
		t.Errorf("a request finding %d in line: %d, Retry-After %q; want 503 at once, Retry-After 1", maxWaiting, w.Code, w.Header().Get("Retry-After"))
	}
	if n := h.waiting.Load(); n != maxWaiting {
		t.Errorf("%d in line after a refused request, want %d", n, maxWaiting)
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

// TestReferenceCached checks that a camera's reference view is drawn once
// per reference and size, whoever asks, so that a cached one is served
// without waiting for a drawing slot; that a new reference is drawn anew;
// and that a camera keeps one drawn.
func TestReferenceCached(t *testing.T) {
	profile := func(level float32) *drift.Profile {
		sig := make([]float32, imagestats.SignatureWidth*imagestats.SignatureHeight)
		for i := range sig {
			sig[i] = level
		}
		return &drift.Profile{Frames: 60, Signature: sig, Width: 1920, Height: 1080}
	}
	cameras := fakeCameras{{Name: "gate", Reference: profile(0.2)}, {Name: "yard", Reference: profile(0.5)}}
	h, mux := handler(t, cameras, false)
	gone, cancel := context.WithCancel(t.Context())
	cancel()
	// request asks for path, unless drawn with every drawing slot taken,
	// from a client gone already: only a picture served from the cache is
	// answered 200 then.
	request := func(path string, drawn bool) (int, []byte) {
		t.Helper()
		ctx := t.Context()
		if !drawn {
			ctx = gone
			for range cap(h.drawing) {
				h.drawing <- struct{}{}
			}
			defer func() {
				for range cap(h.drawing) {
					<-h.drawing
				}
			}()
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequestWithContext(ctx, http.MethodGet, path, nil))
		return w.Code, w.Body.Bytes()
	}
	brightness := func(b []byte) uint32 {
		r, _, _, _ := decodeJPEG(t, b).At(10, 10).RGBA()
		return r >> 8
	}
	for _, tc := range []struct {
		path       string
		drawn      bool
		status     int
		brightness uint32 // of the picture, when 200
		edit       func() // before the request
	}{
		{path: "/cameras/gate/reference.jpg?width=1920", drawn: true, status: 200, brightness: 51},
		{path: "/cameras/gate/reference.jpg?width=1920", status: 200, brightness: 51},
		{path: "/cameras/yard/reference.jpg?width=1920", drawn: true, status: 200, brightness: 128},
		// Another size is another picture: drawn, so 503 for the client gone.
		{path: "/cameras/gate/reference.jpg?width=640", status: 503},
		{path: "/cameras/gate/reference.jpg?width=1920", status: 200, brightness: 51},
		{path: "/cameras/gate/reference.jpg?width=640", drawn: true, status: 200, brightness: 51},
		// One picture a camera: the 640 wide one replaced the 1920 wide one.
		{path: "/cameras/gate/reference.jpg?width=1920", status: 503},
		{path: "/cameras/gate/reference.jpg?width=640", status: 200, brightness: 51},
		// A new reference, as a calibration or a reload makes, is drawn anew.
		{path: "/cameras/gate/reference.jpg?width=640", status: 503, edit: func() { cameras[0].Reference = profile(0.8) }},
		{path: "/cameras/gate/reference.jpg?width=640", drawn: true, status: 200, brightness: 204},
		{path: "/cameras/yard/reference.jpg?width=1920", status: 200, brightness: 128},
	} {
		if tc.edit != nil {
			tc.edit()
		}
		status, body := request(tc.path, tc.drawn)
		if status != tc.status {
			t.Fatalf("%s (drawn %v): %d, want %d", tc.path, tc.drawn, status, tc.status)
		}
		if status == 200 {
			if got := brightness(body); max(got, tc.brightness)-min(got, tc.brightness) > 2 {
				t.Errorf("%s: brightness %d, want %d", tc.path, got, tc.brightness)
			}
		}
	}
	if n := len(h.references.entries); n != 2 {
		t.Errorf("%d references kept for 2 cameras", n)
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

// BenchmarkReference is a reference view drawn and encoded, at the page's
// width and the largest: of a 16:9 camera, and of the 16x16384 picture a
// camera may legally send; and served again from the cache.
func BenchmarkReference(b *testing.B) {
	signature := looks()[0].Reference.Signature
	for _, bc := range []struct {
		name          string
		width, height int
		drawnWidth    int
	}{
		{"16:9/480", 1920, 1080, SnapshotWidth},
		{"16:9/1920", 1920, 1080, 1920},
		{"16x16384/480", 16, 16384, SnapshotWidth},
		{"16x16384/1920", 16, 16384, 1920},
	} {
		p := &drift.Profile{Frames: 60, Signature: signature, Width: bc.width, Height: bc.height}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := encode(referenceImage(p, referenceSize(p, bc.drawnWidth))); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("16:9/1920/cached", func(b *testing.B) {
		_, mux := handler(b, fakeCameras{{Name: "cam", Reference: &drift.Profile{Frames: 60, Signature: signature, Width: 1920, Height: 1080}}}, false)
		req := httptest.NewRequest(http.MethodGet, "/cameras/cam/reference.jpg?width=1920", nil)
		b.ReportAllocs()
		for b.Loop() {
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatal(w.Code, w.Body)
			}
		}
	})
}
