package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
)

// browserTimeout bounds one run of the browser, so that a hung one cannot
// hang the test; it measures nothing.
const browserTimeout = 60 * time.Second

// checkPage is served by the test on the exporter's origin: it shows
// /cameras in a frame and, once the frame and its pictures are loaded,
// writes the cards and the pictures it found into its own DOM, which
// `chromium --dump-dom` prints. The product's pages need no script.
const checkPage = `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>check</title></head>
<body>
<pre id="result"></pre>
<iframe id="page" src="/cameras" width="1400" height="1000"></iframe>
<script>
function report() {
  const out = document.getElementById("result");
  try {
    const doc = document.getElementById("page").contentDocument;
    const imgs = Array.from(doc.images);
    if (!imgs.every(i => i.complete)) {
      setTimeout(report, 50);
      return;
    }
    out.textContent = JSON.stringify({
      url: doc.location.pathname,
      cards: Array.from(doc.querySelectorAll("section.card")).map(c => c.id),
      badges: Array.from(doc.querySelectorAll("section.card .state")).map(b => ({
        card: b.closest("section.card").id,
        text: b.textContent,
        className: b.className,
        color: getComputedStyle(b).backgroundColor,
      })),
      images: imgs.map(i => ({
        card: (i.closest("section.card") || {}).id || "",
        src: i.getAttribute("src"),
        naturalWidth: i.naturalWidth,
        naturalHeight: i.naturalHeight,
      })),
    });
  } catch (e) {
    out.textContent = JSON.stringify({error: String(e)});
  }
}
// The window's load comes after the frame's, which comes after its pictures'.
window.addEventListener("load", report);
</script>
</body>
</html>
`

// checkResult is what checkPage writes.
type checkResult struct {
	Error  string   `json:"error"`
	URL    string   `json:"url"`
	Cards  []string `json:"cards"`
	Badges []struct {
		Card      string `json:"card"`
		Text      string `json:"text"`
		ClassName string `json:"className"`
		Color     string `json:"color"`
	} `json:"badges"`
	Images []struct {
		Card          string `json:"card"`
		Src           string `json:"src"`
		NaturalWidth  int    `json:"naturalWidth"`
		NaturalHeight int    `json:"naturalHeight"`
	} `json:"images"`
}

// TestCamerasInBrowser loads /cameras in headless Chromium, with four
// cameras, one of them showing a person and a learned reference, one
// frozen: every card and every picture must load in a real browser, each
// badge must show its camera's worst state, and a screenshot of
// the page is kept (in $TEST_ARTIFACTS when set, as cameras.png; the
// README's is of TEST_ARTIFACTS=docs). Without chromium the test is
// skipped, unless $CI is set.
func TestCamerasInBrowser(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("chromium not installed (.ci/deps installs it)")
		}
		t.Fatalf("chromium not installed, which CI needs (.ci/deps installs it): %v", err)
	}
	srv, err := rtsptest.Start(rtsptest.Options{}, map[string]*rtsptest.Media{
		// Sensor noise, so that the still scene does not read frozen.
		"entrance": noisyPhotoStream(t, "person.jpg", ""),
		"gray":     rtsptest.Clip(t, rtsptest.H264, "color=c=gray:s=320x240:r=25", 25),
		"pattern":  rtsptest.Clip(t, rtsptest.H264, "testsrc2=s=320x240:r=25", 125, "-g", "5"),
		// The server loops the clip: its one key frame comes again and
		// again, a frozen picture with contrast.
		"bars": rtsptest.Clip(t, rtsptest.H264, "smptebars=s=320x240:r=25", 25),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	// The entrance learns its reference, whose view the page shows, from
	// every frame for 2 s: scrapes in quick succession bring the frames.
	cfg := testutil.DetectorBlock(t, "") + fmt.Sprintf(`defaults:
  reference:
    dir: %s
  detect:
    classes: [person]
cameras:
  - name: entrance
    url: %s
    decode: all
    reference:
      calibration: 2s
  - name: gray
    url: %s
  - name: test-pattern
    url: %s
  - name: bars
    url: %s
`, t.TempDir(), srv.URL("entrance"), srv.URL("gray"), srv.URL("pattern"), srv.URL("bars"))
	e := startExporter(t, cfg, "--web.enable-snapshots", "--collector.image.min-interval=0s")
	cameras := []string{"bars", "entrance", "gray", "test-pattern"}
	// The pages show what the last scrape analyzed, and no scrape comes
	// after this one: the person it found is the one the page shows.
	testutil.WaitFor(t, "every camera analyzed, a person found and the reference learned", 90*time.Second, func() bool {
		m, _ := e.get("/metrics", nil)
		for _, name := range cameras {
			if v, _ := sample(m, fmt.Sprintf("camera_frame_analysis_success{camera=%q}", name)); v != 1 {
				return false
			}
		}
		persons, _ := sample(m, `camera_detected_objects{camera="entrance",class="person"}`)
		frames, _ := sample(m, `camera_reference_frames{camera="entrance"}`)
		calibrating, ok := sample(m, `camera_reference_calibrating{camera="entrance"}`)
		frozen, _ := sample(m, `camera_frame_frozen{camera="bars"}`)
		return persons >= 1 && frames > 0 && ok && calibrating == 0 && frozen == 1
	})

	t.Run("cards and pictures load", func(t *testing.T) {
		target := &url.URL{Scheme: "http", Host: e.addr}
		mux := http.NewServeMux()
		mux.Handle("/", httputil.NewSingleHostReverseProxy(target))
		mux.HandleFunc("GET /__check", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Write([]byte(checkPage)) //nolint:errcheck // the browser went away
		})
		proxy := httptest.NewServer(mux)
		defer proxy.Close()

		dom := runChromium(t, chromium, "--virtual-time-budget=10000", "--dump-dom", proxy.URL+"/__check")
		res := parseCheck(t, dom)
		if res.Error != "" || res.URL != "/cameras" {
			t.Fatalf("the check page found no /cameras in its frame (%q, error %q):\n%s", res.URL, res.Error, dom)
		}
		var wantCards []string
		wantImages := map[string]bool{"/cameras/entrance/reference.jpg": true}
		for _, name := range cameras {
			wantCards = append(wantCards, "camera-"+name)
			wantImages["/cameras/"+name+"/snapshot.jpg"] = true
		}
		if !slices.Equal(res.Cards, wantCards) {
			t.Errorf("cards %q, want %q", res.Cards, wantCards)
		}
		for _, img := range res.Images {
			if !wantImages[img.Src] {
				t.Errorf("unexpected picture %s in %q", img.Src, img.Card)
				continue
			}
			delete(wantImages, img.Src)
			if img.NaturalWidth <= 0 || img.NaturalHeight <= 0 {
				t.Errorf("%s did not load: %dx%d", img.Src, img.NaturalWidth, img.NaturalHeight)
			}
			if name := strings.Split(img.Src, "/")[2]; img.Card != "camera-"+name {
				t.Errorf("%s is in card %q, want camera-%s", img.Src, img.Card, name)
			}
		}
		for src := range wantImages {
			t.Errorf("no picture %s on the page", src)
		}
		// The frozen camera's badge says so, in its colour; the gray
		// picture, too uniform to tell, is up, as CameraFrozen has it.
		wantBadges := map[string][3]string{
			"camera-bars":         {"frozen", "state frozen", "rgb(106, 27, 154)"},
			"camera-entrance":     {"up", "state up", "rgb(46, 125, 50)"},
			"camera-gray":         {"up", "state up", "rgb(46, 125, 50)"},
			"camera-test-pattern": {"up", "state up", "rgb(46, 125, 50)"},
		}
		for _, b := range res.Badges {
			if got := [3]string{b.Text, b.ClassName, b.Color}; got != wantBadges[b.Card] {
				t.Errorf("badge of %s: %q, want %q", b.Card, got, wantBadges[b.Card])
			}
			delete(wantBadges, b.Card)
		}
		for card := range wantBadges {
			t.Errorf("no badge in %s", card)
		}
	})

	t.Run("screenshot", func(t *testing.T) {
		dir := os.Getenv("TEST_ARTIFACTS")
		if dir == "" {
			dir = t.TempDir()
		} else if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		file, err := filepath.Abs(filepath.Join(dir, "cameras.png"))
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(file) //nolint:errcheck // a previous run's, if any
		runChromium(t, chromium, "--hide-scrollbars", "--window-size=1400,1400", "--screenshot="+file, "http://"+e.addr+"/cameras")
		f, err := os.Open(file)
		if err != nil {
			t.Fatalf("no screenshot: %v", err)
		}
		defer f.Close()
		shot, err := png.Decode(f)
		if err != nil {
			t.Fatalf("screenshot %s: %v", file, err)
		}
		t.Logf("screenshot of /cameras: %s (%dx%d)", file, shot.Bounds().Dx(), shot.Bounds().Dy())
		if w := shot.Bounds().Dx(); w != 1400 {
			t.Errorf("screenshot %d wide, want 1400", w)
		}
		// The page's styles applied: its header's color across the top.
		if r, g, b := rgb(shot, shot.Bounds().Dx()/2, 5); !near(r, 0xe6) || !near(g, 0x52) || !near(b, 0x2c) {
			t.Errorf("the top of the screenshot is #%02x%02x%02x, want the header's #e6522c", r, g, b)
		}
		// The person's box, as drawn on the snapshot, shows in the page.
		if n := boxPixels(shot); n < 50 {
			t.Errorf("%d pixels of the box color in the screenshot, want the person's box", n)
		}
		// And the frozen camera's badge.
		if n := colorPixels(shot, 0x6a, 0x1b, 0x9a); n < 100 {
			t.Errorf("%d pixels of the frozen badge's color in the screenshot, want its badge", n)
		}
	})
}

// colorPixels counts the pixels of img near the color r, g, b.
func colorPixels(img image.Image, r, g, b uint32) int {
	n := 0
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			if pr, pg, pb := rgb(img, x, y); near(pr, r) && near(pg, g) && near(pb, b) {
				n++
			}
		}
	}
	return n
}

// near tells whether two 8-bit color components are within what color
// management may change.
func near(a, b uint32) bool { return max(a, b)-min(a, b) <= 4 }

// rgb is the 8-bit color of img at x, y.
func rgb(img image.Image, x, y int) (r, g, b uint32) {
	r, g, b, _ = img.At(x, y).RGBA()
	return r >> 8, g >> 8, b >> 8
}

// runChromium runs headless Chromium with a fresh profile for at most
// browserTimeout and returns what it printed; its log goes to the test's
// on failure.
func runChromium(t *testing.T, chromium string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), browserTimeout)
	defer cancel()
	home := t.TempDir()
	cmd := exec.CommandContext(ctx, chromium, append([]string{
		"--headless=new",
		"--no-sandbox", // as root, as in CI
		"--disable-gpu",
		"--disable-dev-shm-usage",
		"--no-first-run",
		"--no-default-browser-check",
		"--disable-extensions",
		"--disable-background-networking",
		"--mute-audio",
		"--user-data-dir=" + filepath.Join(home, "profile"),
	}, args...)...)
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(home, "config"), "XDG_CACHE_HOME="+filepath.Join(home, "cache"))
	// The browser's helpers run in its process group: a timeout ends them
	// all, and none keeps the output open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	var stdout strings.Builder
	stderr := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	err := cmd.Run()
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) //nolint:errcheck // helpers left over, usually none
	}
	if ctx.Err() != nil {
		t.Fatalf("chromium %s: still running after %v; killed it\n%s", strings.Join(args, " "), browserTimeout, stderr)
	}
	if err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return stdout.String()
}

// parseCheck reads the result checkPage wrote from the DOM Chromium
// dumped.
func parseCheck(t *testing.T, dom string) checkResult {
	t.Helper()
	_, rest, ok := strings.Cut(dom, `<pre id="result">`)
	text, _, ok2 := strings.Cut(rest, "</pre>")
	if !ok || !ok2 || text == "" {
		t.Fatalf("the check page wrote no result:\n%s", dom)
	}
	var res checkResult
	if err := json.Unmarshal([]byte(html.UnescapeString(text)), &res); err != nil {
		t.Fatalf("the check page's result: %v\n%s", err, text)
	}
	return res
}
