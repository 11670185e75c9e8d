package e2e

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
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
	cfgPath, refs := serveViewCameras(t, media)
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
			// An unmoved view (the reference, busy, dark) reads no shift.
			shiftTol := 0.01
			if w.dx == 0 && w.dy == 0 && w.scale == 1 {
				shiftTol = 0.002
			}
			if math.Abs(shiftX-w.dx) > shiftTol || math.Abs(shiftY-w.dy) > shiftTol {
				t.Errorf("%s: shift (%+.4f, %+.4f), want (%+.2f, %+.2f) within %g", name, shiftX, shiftY, w.dx, w.dy, shiftTol)
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

// TestViewFootage films real footage of a fixed outdoor camera, people
// walking, as cameras that were turned, zoomed and rolled see it, by day
// and by night, and checks what the exporter measures against references
// learned from the unmoved streams: every value within the issue's
// tolerances. Without the footage the test is skipped, unless $CI is set.
func TestViewFootage(t *testing.T) {
	testutil.NeedFootage(t)
	// Night: a fifth of the light or less, with the sensor's noise.
	night := func(gain float64) string {
		return fmt.Sprintf(",lutyuv=y=16+(val-16)*%g,noise=alls=6:allf=t", gain)
	}
	// The references: the footage as filmed, and a camera zoomed in on it,
	// so that the cameras that zoom out from it have the scene to show.
	full, inner := testutil.FootageCamera{Zoom: 1}, testutil.FootageCamera{Zoom: 1.25, X0: 0.1, Y0: 0.1}
	type viewCase struct {
		ref   string // the camera whose reference is this one's
		cam   testutil.FootageCamera
		vf    string  // after the camera's filter
		start float64 // second of the footage the stream starts at
	}
	cases := map[string]viewCase{
		"footage": {"footage", full, "", 0},
		"inner":   {"inner", inner, "", 0},
		// Other people, elsewhere, than in the reference's frames.
		"unmoved": {"footage", full, "", 30},
		// The issue's: x 10 to 100%, y 5 to 95% of the footage.
		"turned":           {"footage", testutil.FootageCamera{Zoom: 1 / 0.9, X0: 0.1, Y0: 0.05}, "", 20},
		"turned-night":     {"footage", testutil.FootageCamera{Zoom: 1 / 0.9, X0: 0.1, Y0: 0.05}, night(0.2), 40},
		"zoom120":          {"footage", testutil.FootageCamera{Zoom: 1.2, X0: 0.05, Y0: 0.1}, "", 50},
		"rolled5":          {"footage", testutil.FootageCamera{Zoom: 1.15, Rot: 5, X0: 0.08, Y0: 0.06}, "", 25},
		"rolled-4-night":   {"footage", testutil.FootageCamera{Zoom: 1.15, Rot: -4, X0: 0.1, Y0: 0.1}, night(0.3), 60},
		"zoom85":           {"inner", testutil.FootageCamera{Zoom: 1.25 * 0.85, X0: 0.03, Y0: 0.02}, "", 35},
		"zoom90-rolled3":   {"inner", testutil.FootageCamera{Zoom: 1.25 * 0.9, Rot: 3, X0: 0.05, Y0: 0.03}, "", 45},
		"zoom90-night":     {"inner", testutil.FootageCamera{Zoom: 1.25 * 0.9, X0: 0.02, Y0: 0.07}, night(0.15), 55},
		"zoom110-rolled-5": {"inner", testutil.FootageCamera{Zoom: 1.25 * 1.1, Rot: -5, X0: 0.15, Y0: 0.13}, "", 15},
	}
	// 4 s at 10 fps, a key frame a second; veryfast, and as many encoded at
	// once as there are cores, for the test's time.
	var (
		media   = map[string]*rtsptest.Media{}
		mu      sync.Mutex
		wg      sync.WaitGroup
		encodes = make(chan struct{}, runtime.NumCPU())
		dir     = t.TempDir()
	)
	for name, c := range cases {
		wg.Go(func() {
			encodes <- struct{}{}
			defer func() { <-encodes }()
			m, err := rtsptest.Encode(t.Context(), dir, rtsptest.H264, 10, 40,
				[]string{"-ss", fmt.Sprint(c.start), "-i", testutil.FootagePath}, "-vf", c.cam.Filter()+c.vf, "-preset", "veryfast")
			if err != nil {
				t.Errorf("%s: %v", name, err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			media[name] = m
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	cfgPath, refs := serveViewCameras(t, media)
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
			dx, dy, scale, rot := c.cam.Relative(cases[c.ref].cam)
			shiftX := value(fmt.Sprintf(`camera_view_shift_ratio{axis="x",camera=%q}`, name))
			shiftY := value(fmt.Sprintf(`camera_view_shift_ratio{axis="y",camera=%q}`, name))
			gotScale := value(fmt.Sprintf(`camera_view_scale_ratio{camera=%q}`, name))
			gotRot := value(fmt.Sprintf(`camera_view_rotation_degrees{camera=%q}`, name))
			t.Logf("%-17s shift %+.4f %+.4f (%+.4f %+.4f)  scale %.4f (%.4f)  rotation %+.2f° (%+g°)  match %.3f",
				name, shiftX, shiftY, dx, dy, gotScale, scale, gotRot, rot,
				value(fmt.Sprintf(`camera_view_match_ratio{camera=%q}`, name)))
			// The tolerances; the unmoved views read 0 shift and a
			// zoom of 1.000 ± 0.005.
			shiftTol, scaleTol := 0.01, 0.01
			if scale == 1 {
				scaleTol = 0.005
				if dx == 0 && dy == 0 {
					shiftTol = 0.002
				}
			}
			if math.Abs(shiftX-dx) > shiftTol || math.Abs(shiftY-dy) > shiftTol {
				t.Errorf("%s: shift (%+.4f, %+.4f), want (%+.4f, %+.4f) within %g", name, shiftX, shiftY, dx, dy, shiftTol)
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

// serveViewCameras serves media until the test ends and writes a
// configuration of a camera per clip, with a reference directory: it
// returns the configuration's path and the directory.
func serveViewCameras(t *testing.T, media map[string]*rtsptest.Media) (cfgPath, refs string) {
	t.Helper()
	srv, err := rtsptest.Start(rtsptest.Options{}, media)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	refs = t.TempDir()
	cfg := fmt.Sprintf("defaults:\n  reference:\n    dir: %s\ncameras:\n", refs)
	for name := range media {
		cfg += fmt.Sprintf("  - name: %s\n    url: %s\n", name, srv.URL(name))
	}
	cfgPath = filepath.Join(t.TempDir(), "exporter.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath, refs
}
