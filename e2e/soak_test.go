package e2e

import (
	"flag"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
)

var soakDuration = flag.Duration("soak", 0, "run TestSoak for this long (make soak)")

// Growth TestSoak tolerates between the medians of its first and last
// windows. Sessions of the misbehaving cameras come and go, each with a
// connection and a few gortsplib goroutines; a leak per reconnect or per
// frame grows far beyond these over 30 minutes of reconnects every few
// seconds and 500 frames a second.
const (
	soakGoroutines = 20
	soakFDs        = 10
	// RSS: the Go heap may grow to twice what is live before a collection
	// (GOGC=100), and glibc keeps freed decoder buffers in its arenas.
	soakRSSGrowth = 1.25
	soakRSSSlack  = 32 << 20
)

// soakSample is what a scrape tells about the exporter's own resources.
type soakSample struct{ rss, goroutines, fds float64 }

// TestSoak runs the exporter binary for -soak (make soak: 30m) against 24
// cameras, healthy and misbehaving, scraping every second, and fails when
// its goroutines, open file descriptors or RSS grew from the first window
// of scrapes after the warm-up to the last.
func TestSoak(t *testing.T) {
	if *soakDuration <= 0 {
		t.Skip("soak test: run with -soak=DURATION (make soak)")
	}
	const pattern = "testsrc=s=320x240:r=25"
	h264 := rtsptest.Clip(t, rtsptest.H264, pattern, 50)
	h265 := rtsptest.Clip(t, rtsptest.H265, pattern, 25)
	mjpeg := rtsptest.Clip(t, rtsptest.MJPEG, pattern, 25)
	clips := map[string]*rtsptest.Media{}
	var entries []string
	camera := func(name string, clip *rtsptest.Media, extra string) {
		if clip != nil {
			clips[name] = clip
		}
		entries = append(entries, "  - name: "+name+"\n    url: {"+name+"}\n"+extra)
	}
	var healthy []string
	for i, clip := range []*rtsptest.Media{h264, h264, h264, h264, h265, h265, h265, mjpeg, mjpeg} {
		name := fmt.Sprintf("healthy-%s-%d", clip.Codec, i)
		camera(name, clip, "")
		healthy = append(healthy, name)
	}
	camera("decode-all", h264, "    decode: all\n")
	healthy = append(healthy, "decode-all")
	camera("duplicated-h264", h264, "")
	camera("duplicated-mjpeg", mjpeg, "")
	camera("dropped-packets", h264, "")
	camera("encoder-restarts", h264, "")
	camera("paused", h264, "")
	camera("pausing", mjpeg, "")
	camera("dropped-sessions-h264", h264, "")
	camera("dropped-sessions-mjpeg", mjpeg, "")
	camera("removed", h264, "")
	camera("picture-too-large", h264, "    max_picture_pixels: 50000\n")
	camera("dead", nil, "")
	camera("silent", nil, "    timeout: 2s\n")
	camera("redirect-loop", nil, "")
	camera("wrong-password", nil, "    username: viewer\n    password: wrong\n")
	if len(entries) != 24 {
		t.Fatalf("%d cameras, want 24", len(entries))
	}

	srv, err := rtsptest.Start(rtsptest.Options{}, clips)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	auth, err := rtsptest.Start(rtsptest.Options{User: cameraUser, Pass: cameraPass}, map[string]*rtsptest.Media{"cam": mjpeg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(auth.Close)
	var loop *rtsptest.Fake
	loop, err = rtsptest.StartFake(func(req rtsptest.FakeRequest) rtsptest.FakeResponse {
		if req.Method == "DESCRIBE" {
			return rtsptest.FakeResponse{Status: http.StatusFound, Header: map[string][]string{"Location": {loop.URL("loop")}}}
		}
		return rtsptest.FakePlay(req)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(loop.Close)
	urls := map[string]string{
		"dead":           "rtsp://" + testutil.FreeAddr(t) + "/cam",
		"silent":         "rtsp://" + testutil.SilentAddr(t) + "/cam",
		"redirect-loop":  loop.URL("loop"),
		"wrong-password": auth.URL("cam"),
	}
	cfg := "cameras:\n" + strings.Join(entries, "")
	for name := range clips {
		urls[name] = srv.URL(name)
	}
	for name, u := range urls {
		cfg = strings.Replace(cfg, "{"+name+"}", u, 1)
	}

	srv.Duplicate("duplicated-h264")
	srv.Duplicate("duplicated-mjpeg")
	srv.Pause("paused")
	srv.Remove("removed")
	e := startExporter(t, cfg)

	scrape := func() (string, soakSample) {
		m, err := e.get("/metrics", nil)
		if err != nil {
			t.Fatalf("scrape: %v\n%s", err, e.logs)
		}
		var s soakSample
		for _, f := range []struct {
			series string
			v      *float64
		}{{"process_resident_memory_bytes", &s.rss}, {"go_goroutines", &s.goroutines}, {"process_open_fds", &s.fds}} {
			v, ok := sample(m, f.series)
			if !ok {
				t.Fatalf("no %s in the scrape", f.series)
			}
			*f.v = v
		}
		return m, s
	}

	// The faults recur on their own schedules while scrapes go on every
	// second; a window is the last scrapes of each phase.
	const window = 30
	warmUp := min(max(*soakDuration/10, 30*time.Second), 2*time.Minute)
	start, end := time.Now(), time.Now().Add(*soakDuration)
	var first, recent []soakSample
	var last string
	for i := 1; time.Now().Before(end); i++ {
		time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second)))
		if i%5 == 0 {
			srv.Drop("dropped-packets", 3)
		}
		if i%20 == 0 {
			srv.DropSessions("dropped-sessions-h264")
			srv.DropSessions("dropped-sessions-mjpeg")
		}
		if i%60 == 0 {
			srv.Pause("pausing")
		} else if i%60 == 30 {
			srv.Resume("pausing")
		}
		if i%45 == 0 {
			srv.RestartEncoder("encoder-restarts")
		}
		m, s := scrape()
		last = m
		recent = append(recent, s)
		if len(recent) > window {
			recent = recent[1:]
		}
		if time.Since(start) < warmUp {
			first = slices.Clone(recent)
		}
		if i%60 == 0 {
			t.Logf("%s: RSS %.1f MiB, %.0f goroutines, %.0f open fds", time.Since(start).Round(time.Second), s.rss/(1<<20), s.goroutines, s.fds)
		}
	}

	before, after := soakMedian(first), soakMedian(recent)
	t.Logf("after %s with %d cameras (medians of %d scrapes, after the %s warm-up and at the end):", *soakDuration, len(entries), window, warmUp)
	t.Logf("RSS        %7.1f MiB -> %7.1f MiB", before.rss/(1<<20), after.rss/(1<<20))
	t.Logf("goroutines %7.0f     -> %7.0f", before.goroutines, after.goroutines)
	t.Logf("open fds   %7.0f     -> %7.0f", before.fds, after.fds)
	if after.goroutines > before.goroutines+soakGoroutines {
		t.Errorf("goroutines grew from %.0f to %.0f", before.goroutines, after.goroutines)
	}
	if after.fds > before.fds+soakFDs {
		t.Errorf("open file descriptors grew from %.0f to %.0f", before.fds, after.fds)
	}
	if after.rss > before.rss*soakRSSGrowth+soakRSSSlack {
		t.Errorf("RSS grew from %.1f MiB to %.1f MiB", before.rss/(1<<20), after.rss/(1<<20))
	}
	// The soak proves something only if the healthy cameras stayed up.
	for _, name := range healthy {
		if v, _ := sample(last, `camera_up{camera="`+name+`"}`); v != 1 {
			t.Errorf("healthy camera %s is down at the end", name)
		}
	}
	if strings.Contains(e.logs.String(), "panic") {
		t.Errorf("the exporter panicked:\n%s", e.logs)
	}
}

// soakMedian is the median of each resource over samples.
func soakMedian(samples []soakSample) soakSample {
	median := func(f func(soakSample) float64) float64 {
		v := make([]float64, len(samples))
		for i, s := range samples {
			v[i] = f(s)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return soakSample{
		rss:        median(func(s soakSample) float64 { return s.rss }),
		goroutines: median(func(s soakSample) float64 { return s.goroutines }),
		fds:        median(func(s soakSample) float64 { return s.fds }),
	}
}
