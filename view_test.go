package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
)

// The views of TestView are cut from dog.jpg (768x576): a 480x270 window,
// 16:9, centred at (viewX+240, viewY+135), which pans within the photo by up
// to 20% of its size either way, and is sent at 640x360.
const (
	viewPhoto         = "dog.jpg"
	viewW, viewH      = 480, 270
	viewX, viewY      = 144, 153 // the photo's centre is the view's
	viewOut           = "scale=640:360"
	viewNoise         = "noise=alls=6:allf=t" // sensor noise, changing every frame
	viewStreamSeconds = 2
)

// viewStream encodes the camera's view through an ffmpeg filter graph over
// dog.jpg ([0:v]) and, for pasted objects, person.jpg ([1:v]), ending in
// [out].
func viewStream(t *testing.T, graph string) *rtsptest.Media {
	t.Helper()
	m, err := rtsptest.Encode(t.Context(), t.TempDir(), rtsptest.H264, 25, 25*viewStreamSeconds,
		[]string{"-loop", "1", "-i", filepath.Join(sharedImages, viewPhoto), "-loop", "1", "-i", filepath.Join(sharedImages, "person.jpg")},
		"-filter_complex", graph, "-map", "[out]")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// crop returns the filter that cuts the view panned so that the scene
// moves by dx of the view's width to the right and dy of its height down,
// zoomed by zoom, from the photo.
func crop(dx, dy, zoom float64) string {
	w, h := float64(viewW)/zoom, float64(viewH)/zoom
	cx, cy := viewX+viewW/2-dx*viewW, viewY+viewH/2-dy*viewH
	return fmt.Sprintf("crop=%.0f:%.0f:%.0f:%.0f", w, h, cx-w/2, cy-h/2)
}

// TestView serves views cut from a larger photo, as a camera that was
// turned, zoomed, darkened, crowded or covered sees its scene, and checks
// what the exporter measures against a reference built from the view
// itself.
func TestView(t *testing.T) {
	type want struct {
		dx, dy, scale, rotation float64
	}
	still := "[0:v]" + crop(0, 0, 1) + "," + viewOut + "," + viewNoise + "[out]"
	cameras := map[string]struct {
		graph string
		want  *want // nil: the view is not measured against the truth
	}{
		"reference": {still, &want{0, 0, 1, 0}},
		// The busy view: three people walk through the scene, at other
		// places in each frame.
		"busy": {"[1:v]crop=110:280:180:90,scale=40:100,split=3[p1][p2][p3];" +
			"[0:v]" + crop(0, 0, 1) + "," + viewOut + "[v];" +
			"[v][p1]overlay=x='mod(n*53,600)':y=200[a];[a][p2]overlay=x='mod(400+n*71,600)':y=150[b];" +
			"[b][p3]overlay=x='mod(200+n*37,600)':y='100+mod(n*13,160)'," + viewNoise + "[out]", &want{0, 0, 1, 0}},
		// Dusk: a tenth of the light, with the sensor's noise. Luma is
		// coded from 16 (black) to 235.
		"dark":    {"[0:v]" + crop(0, 0, 1) + "," + viewOut + ",lutyuv=y=16+(val-16)/10," + viewNoise + "[out]", &want{0, 0, 1, 0}},
		"covered": {"[0:v]" + crop(0, 0, 1) + "," + viewOut + ",drawbox=x=0:y=0:w=320:h=360:color=0x202020:t=fill," + viewNoise + "[out]", nil},
		"zoom":    {"[0:v]" + crop(0, 0, 1.2) + "," + viewOut + "," + viewNoise + "[out]", &want{0, 0, 1.2, 0}},
		// ffmpeg's rotate turns the photo clockwise about its centre, which
		// is the view's, for a positive angle.
		"rotated": {"[0:v]rotate=3*PI/180," + crop(0, 0, 1) + "," + viewOut + "," + viewNoise + "[out]", nil},
	}
	for _, shift := range []float64{0.02, 0.05, 0.1, 0.2} {
		cameras[fmt.Sprintf("x%.0f", shift*100)] = struct {
			graph string
			want  *want
		}{"[0:v]" + crop(shift, 0, 1) + "," + viewOut + "," + viewNoise + "[out]", &want{shift, 0, 1, 0}}
		cameras[fmt.Sprintf("y-%.0f", shift*100)] = struct {
			graph string
			want  *want
		}{"[0:v]" + crop(0, -shift, 1) + "," + viewOut + "," + viewNoise + "[out]", &want{0, -shift, 1, 0}}
	}
	media := map[string]*rtsptest.Media{}
	for name, c := range cameras {
		media[name] = viewStream(t, c.graph)
	}
	srv, err := rtsptest.Start(rtsptest.Options{}, media)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	refs := t.TempDir()
	cfg := fmt.Sprintf("defaults:\n  reference:\n    dir: %s\ncameras:\n", refs)
	for name := range cameras {
		cfg += fmt.Sprintf("  - name: %s\n    url: %s\n", name, srv.URL(name))
	}
	cfgPath := filepath.Join(t.TempDir(), "exporter.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var others []string
	for name := range cameras {
		if name != "reference" {
			others = append(others, name)
		}
	}
	out := buildSharedReference(t, cfgPath, refs, "reference", "5s", "200ms", others...)
	if !strings.Contains(out, "view: 640x360 pictures") {
		t.Errorf("reference build does not tell the reference's view:\n%s", out)
	}

	e := startExporterWithConfig(t, cfgPath, "--collector.image.min-interval=0s")
	var metrics string
	testutil.WaitFor(t, "every camera's view measured", 60*time.Second, func() bool {
		metrics, _ = e.get("/metrics", nil)
		return strings.Count(metrics, "camera_view_match_ratio{") == len(cameras)
	})
	value := func(series string) float64 {
		t.Helper()
		v, ok := sample(metrics, series)
		if !ok {
			t.Errorf("no %s", series)
		}
		return v
	}
	for name, c := range cameras {
		shiftX := value(fmt.Sprintf(`camera_view_shift_ratio{axis="x",camera=%q}`, name))
		shiftY := value(fmt.Sprintf(`camera_view_shift_ratio{axis="y",camera=%q}`, name))
		scale := value(fmt.Sprintf(`camera_view_scale_ratio{camera=%q}`, name))
		rotation := value(fmt.Sprintf(`camera_view_rotation_degrees{camera=%q}`, name))
		match := value(fmt.Sprintf(`camera_view_match_ratio{camera=%q}`, name))
		t.Logf("%-9s shift %+.4f %+.4f  scale %.4f  rotation %+.2f°  match %.3f", name, shiftX, shiftY, scale, rotation, match)
		if w := c.want; w != nil {
			if math.Abs(shiftX-w.dx) > 0.01 || math.Abs(shiftY-w.dy) > 0.01 {
				t.Errorf("%s: shift (%+.4f, %+.4f), want (%+.2f, %+.2f) within 0.01", name, shiftX, shiftY, w.dx, w.dy)
			}
			if math.Abs(scale/w.scale-1) > 0.01 {
				t.Errorf("%s: scale %.4f, want %.2f within 1%%", name, scale, w.scale)
			}
		}
	}
	if r := value(`camera_view_rotation_degrees{camera="rotated"}`); math.Abs(r+3) > 0.5 {
		t.Errorf("the view turned 3° clockwise reads %+.2f°, want -3 within 0.5", r)
	}
	busy, covered := value(`camera_view_match_ratio{camera="busy"}`), value(`camera_view_match_ratio{camera="covered"}`)
	if busy < covered+0.25 || covered > 0.5 {
		t.Errorf("match ratio: busy view %.3f, half covered %.3f; want the covered one under 0.5 and 0.25 below the busy one", busy, covered)
	}
}

// footagePath is real footage of a fixed outdoor camera, people walking
// across a square, 768x576 at 10 fps, that Debian's opencv-doc installs.
const footagePath = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"

const footageW, footageH = 768, 576

// footageCamera is a camera filming the footage's scene: it turns the
// scene by rot degrees counterclockwise about the footage's centre, then
// shows the window zoom times smaller than the footage whose top left
// corner is at (x0, y0) of the footage's width and height, at the
// footage's size.
type footageCamera struct {
	zoom, rot, x0, y0 float64
}

// filter is the ffmpeg filter that films the camera's view.
func (c footageCamera) filter() string {
	f := ""
	if c.rot != 0 {
		// ffmpeg's rotate turns clockwise for a positive angle.
		f = fmt.Sprintf("rotate=%g*PI/180,", -c.rot)
	}
	// exact: the luma's window where asked, not moved to even pixels for
	// the chroma's sake.
	return f + fmt.Sprintf("crop=%.0f:%.0f:%.0f:%.0f:exact=1,scale=%d:%d", footageW/c.zoom, footageH/c.zoom,
		c.x0*footageW, c.y0*footageH, footageW, footageH)
}

// relative is the truth the exporter measures: how the camera's view
// relates to the reference camera's (which does not turn). A footage point
// f shows in a camera at z·(m + R(rot)(f − m) − o), m the footage's
// centre, o the window's corner, z the window's zoom.
func (c footageCamera) relative(ref footageCamera) (dx, dy, scale, rot float64) {
	mx, my := footageW/2.0, footageH/2.0
	window := func(c footageCamera) (ox, oy, z float64) { // whole pixels, as cropped
		return math.Round(c.x0 * footageW), math.Round(c.y0 * footageH), footageW / math.Round(footageW/c.zoom)
	}
	rx, ry, rz := window(ref)
	ox, oy, z := window(c)
	sin, cos := math.Sincos(c.rot * math.Pi / 180)
	turn := func(x, y float64) (float64, float64) { return cos*x + sin*y, -sin*x + cos*y }
	scale = z / rz
	// The reference's pixel p shows the footage's p/rz + (rx, ry), which
	// the camera shows at c + scale·R(rot)(p − c) + t, c the centre.
	ax, ay := turn(rx-mx, ry-my)
	bx, by := turn(mx, my)
	tx := z*(mx+ax-ox) - mx + scale*bx
	ty := z*(my+ay-oy) - my + scale*by
	return tx / footageW, ty / footageH, scale, c.rot
}

// TestViewFootage films real footage of a fixed outdoor camera, people
// walking, as cameras that were turned, zoomed and rolled see it, by day
// and by night, and checks what the exporter measures against references
// learned from the unmoved streams: every value within the issue's
// tolerances. Without the footage the test is skipped, unless $CI is set.
func TestViewFootage(t *testing.T) {
	if _, err := os.Stat(footagePath); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("real footage missing (.ci/deps installs opencv-doc): %v", err)
		}
		t.Fatalf("real footage missing, which CI needs (.ci/deps installs opencv-doc): %v", err)
	}
	// Night: a fifth of the light or less, with the sensor's noise.
	night := func(gain float64) string {
		return fmt.Sprintf(",lutyuv=y=16+(val-16)*%g,noise=alls=6:allf=t", gain)
	}
	// The references: the footage as filmed, and a camera zoomed in on it,
	// so that the cameras that zoom out from it have the scene to show.
	full, inner := footageCamera{zoom: 1}, footageCamera{zoom: 1.25, x0: 0.1, y0: 0.1}
	type viewCase struct {
		ref   string // the camera whose reference is this one's
		cam   footageCamera
		vf    string  // after the camera's filter
		start float64 // second of the footage the stream starts at
	}
	cases := map[string]viewCase{
		"footage": {"footage", full, "", 0},
		"inner":   {"inner", inner, "", 0},
		// Other people, elsewhere, than in the reference's frames.
		"unmoved": {"footage", full, "", 30},
		// The issue's: x 10 to 100%, y 5 to 95% of the footage.
		"turned":           {"footage", footageCamera{zoom: 1 / 0.9, x0: 0.1, y0: 0.05}, "", 20},
		"turned-night":     {"footage", footageCamera{zoom: 1 / 0.9, x0: 0.1, y0: 0.05}, night(0.2), 40},
		"zoom120":          {"footage", footageCamera{zoom: 1.2, x0: 0.05, y0: 0.1}, "", 50},
		"rolled5":          {"footage", footageCamera{zoom: 1.15, rot: 5, x0: 0.08, y0: 0.06}, "", 25},
		"rolled-4-night":   {"footage", footageCamera{zoom: 1.15, rot: -4, x0: 0.1, y0: 0.1}, night(0.3), 60},
		"zoom85":           {"inner", footageCamera{zoom: 1.25 * 0.85, x0: 0.03, y0: 0.02}, "", 35},
		"zoom90-rolled3":   {"inner", footageCamera{zoom: 1.25 * 0.9, rot: 3, x0: 0.05, y0: 0.03}, "", 45},
		"zoom90-night":     {"inner", footageCamera{zoom: 1.25 * 0.9, x0: 0.02, y0: 0.07}, night(0.15), 55},
		"zoom110-rolled-5": {"inner", footageCamera{zoom: 1.25 * 1.1, rot: -5, x0: 0.15, y0: 0.13}, "", 15},
	}
	media := map[string]*rtsptest.Media{}
	for name, c := range cases {
		// 8 s at 10 fps, a key frame a second; veryfast, for the test's time.
		m, err := rtsptest.Encode(t.Context(), t.TempDir(), rtsptest.H264, 10, 80,
			[]string{"-ss", fmt.Sprint(c.start), "-i", footagePath}, "-vf", c.cam.filter()+c.vf, "-preset", "veryfast")
		if err != nil {
			t.Fatal(err)
		}
		media[name] = m
	}
	srv, err := rtsptest.Start(rtsptest.Options{}, media)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	refs := t.TempDir()
	cfg := fmt.Sprintf("defaults:\n  reference:\n    dir: %s\ncameras:\n", refs)
	for name := range cases {
		cfg += fmt.Sprintf("  - name: %s\n    url: %s\n", name, srv.URL(name))
	}
	cfgPath := filepath.Join(t.TempDir(), "exporter.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"footage", "inner"} {
		var to []string
		for name, c := range cases {
			if c.ref == ref && name != ref {
				to = append(to, name)
			}
		}
		buildSharedReference(t, cfgPath, refs, ref, "5s", "200ms", to...)
	}

	// Each scrape analyzes the cameras' latest frames.
	e := startExporterWithConfig(t, cfgPath, "--collector.image.min-interval=0s")
	var metrics string
	testutil.WaitFor(t, "every camera's view measured", 60*time.Second, func() bool {
		metrics, _ = e.get("/metrics", nil)
		return strings.Count(metrics, "camera_view_match_ratio{") == len(cases)
	})
	// Three scrapes, a second apart: other frames, other people.
	for scrape := range 3 {
		if scrape > 0 {
			time.Sleep(time.Second)
			metrics, _ = e.get("/metrics", nil)
		}
		value := func(series string) float64 {
			t.Helper()
			v, ok := sample(metrics, series)
			if !ok {
				t.Errorf("no %s", series)
			}
			return v
		}
		for name, c := range cases {
			dx, dy, scale, rot := c.cam.relative(cases[c.ref].cam)
			shiftX := value(fmt.Sprintf(`camera_view_shift_ratio{axis="x",camera=%q}`, name))
			shiftY := value(fmt.Sprintf(`camera_view_shift_ratio{axis="y",camera=%q}`, name))
			gotScale := value(fmt.Sprintf(`camera_view_scale_ratio{camera=%q}`, name))
			gotRot := value(fmt.Sprintf(`camera_view_rotation_degrees{camera=%q}`, name))
			t.Logf("%-17s shift %+.4f %+.4f (%+.4f %+.4f)  scale %.4f (%.4f)  rotation %+.2f° (%+g°)  match %.3f",
				name, shiftX, shiftY, dx, dy, gotScale, scale, gotRot, rot,
				value(fmt.Sprintf(`camera_view_match_ratio{camera=%q}`, name)))
			scaleTol := 0.01
			if scale == 1 {
				scaleTol = 0.005
			}
			if math.Abs(shiftX-dx) > 0.01 || math.Abs(shiftY-dy) > 0.01 {
				t.Errorf("%s: shift (%+.4f, %+.4f), want (%+.4f, %+.4f) within 0.01", name, shiftX, shiftY, dx, dy)
			}
			if math.Abs(gotScale-scale) > scaleTol {
				t.Errorf("%s: scale %.4f, want %.4f within %g", name, gotScale, scale, scaleTol)
			}
			if math.Abs(gotRot-rot) > 0.5 {
				t.Errorf("%s: rotation %+.2f°, want %+g° within 0.5°", name, gotRot, rot)
			}
		}
	}
}
