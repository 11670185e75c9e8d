package probe_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"

	"github.com/camera-exporter/camera_exporter/analysis"
	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/camera/decode"
	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
	"github.com/camera-exporter/camera_exporter/collector"
	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
	"github.com/camera-exporter/camera_exporter/probe"
)

// fixture is an exporter's /probe, over real sessions to test cameras.
type fixture struct {
	t        *testing.T
	cameras  *rtsptest.Server
	url      string // of /probe
	exporter *prometheus.Registry
	probes   *probe.Handler
	config   atomic.Pointer[config.Config]
	manager  *camera.Manager
}

type fixtureOptions struct {
	config      string // the configuration file; {{addr}} is the cameras' host:port
	maxSessions int
	idleTimeout time.Duration
	rtsp        rtsptest.Options
	collectors  []string // all when empty
}

// gray is a clip whose brightness is known: luma 128 of 255, limited range.
func grayClip(t *testing.T) *rtsptest.Media {
	return rtsptest.Clip(t, rtsptest.H264, "color=c=0x808080:s=320x240:r=25", 50, "-g", "10")
}

func newFixture(t *testing.T, opts fixtureOptions) *fixture {
	t.Helper()
	gray := grayClip(t)
	cameras, err := rtsptest.Start(opts.rtsp, map[string]*rtsptest.Media{"north": gray, "south": gray, "east": gray})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cameras.Close)
	f := &fixture{t: t, cameras: cameras, exporter: prometheus.NewRegistry()}
	f.load(opts.config)
	logger := promslog.NewNopLogger()
	f.manager = camera.NewManager(camera.AsNewDecoder(decode.New), logger)
	f.manager.Apply(f.config.Load())
	if len(opts.collectors) == 0 {
		opts.collectors = []string{"stream", "image", "detection", "drift"}
	}
	metrics, err := collector.NewCameraCollector(analysis.ManagerCameras(f.manager, nil), logger, opts.collectors...)
	if err != nil {
		t.Fatal(err)
	}
	if opts.maxSessions == 0 {
		opts.maxSessions = 10
	}
	if opts.idleTimeout == 0 {
		opts.idleTimeout = time.Minute
	}
	f.probes = probe.New(probe.Options{
		Config:      f.config.Load,
		Manager:     f.manager,
		Metrics:     metrics,
		MaxSessions: opts.maxSessions,
		IdleTimeout: opts.idleTimeout,
		ScrapeContext: func(r *http.Request) (context.Context, context.CancelFunc) {
			return context.WithTimeout(r.Context(), 10*time.Second)
		},
		Logger: logger,
	}, f.exporter)
	server := httptest.NewServer(f.probes)
	f.url = server.URL
	t.Cleanup(func() {
		server.Close()
		f.probes.Close()
		f.manager.Close()
	})
	return f
}

// load puts a configuration in force, as a reload does.
func (f *fixture) load(text string) {
	f.t.Helper()
	path := filepath.Join(f.t.TempDir(), "exporter.yml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(text, "{{addr}}", f.cameras.Addr)), 0o600); err != nil {
		f.t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		f.t.Fatal(err)
	}
	if f.manager != nil {
		f.manager.Apply(cfg)
	}
	f.config.Store(cfg)
}

// probe requests /probe with params, and returns the status and body.
func (f *fixture) probe(params url.Values) (int, string) {
	f.t.Helper()
	res, err := http.Get(f.url + "/probe?" + params.Encode())
	if err != nil {
		f.t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	return res.StatusCode, string(body)
}

// families probes and parses the answer, which must be a 200.
func (f *fixture) families(params url.Values) map[string]*dto.MetricFamily {
	f.t.Helper()
	code, body := f.probe(params)
	if code != http.StatusOK {
		f.t.Fatalf("probe %s: status %d: %s", params.Encode(), code, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		f.t.Fatalf("probe %s: %v\n%s", params.Encode(), err, body)
	}
	return families
}

// value returns the value of the family's series with the given labels,
// NaN if there is none.
func value(families map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	for _, m := range families[name].GetMetric() {
		matches := true
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				found = found || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
			}
			matches = matches && found
		}
		if matches {
			switch {
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			}
		}
	}
	return math.NaN()
}

func target(f *fixture, clip string) string { return f.cameras.Addr + "/" + clip }

const loopbackModule = `
modules:
  site:
    allowed_targets: [127.0.0.0/8]
    timeout: 5s
`

// TestProbe probes a camera by URL: the first probe opens its session and
// waits for its first picture, later probes read the same session, and the
// answer has the probe's metrics and the camera's, with their values.
func TestProbe(t *testing.T) {
	f := newFixture(t, fixtureOptions{config: loopbackModule})
	params := url.Values{"target": {target(f, "north")}, "module": {"site"}, "camera": {"gate-north"}}
	for i := range 3 {
		families := f.families(params)
		if got := value(families, "probe_success"); got != 1 {
			t.Fatalf("probe %d: probe_success = %v, want 1; failure: %v", i, got, families["probe_failure_info"])
		}
		if got := value(families, "probe_duration_seconds"); !(got > 0) {
			t.Errorf("probe %d: probe_duration_seconds = %v", i, got)
		}
		if got := value(families, "camera_up", "camera", "gate-north"); got != 1 {
			t.Errorf("probe %d: camera_up = %v, want 1", i, got)
		}
		// Luma 128 of 255 is 0.50; limited-range H264 rounds a little.
		if got := value(families, "camera_frame_brightness_ratio", "camera", "gate-north"); math.Abs(got-0.5) > 0.02 {
			t.Errorf("probe %d: camera_frame_brightness_ratio = %v, want 0.50 ± 0.02", i, got)
		}
		// A probe's collector failure is its camera's, probe_success.
		if f := families["camera_scrape_collector_success"]; f != nil {
			t.Errorf("probe %d: the answer has camera_scrape_collector_success", i)
		}
	}
	if n := f.cameras.Sessions("north"); n != 1 {
		t.Errorf("the camera has %d sessions after three probes, want 1", n)
	}
	_, body := f.probe(params)
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil || len(problems) > 0 {
		t.Errorf("the answer does not lint: %v %v", err, problems)
	}
	if got := exporterValue(t, f.exporter, "camera_exporter_probe_sessions"); got != 1 {
		t.Errorf("camera_exporter_probe_sessions = %v, want 1", got)
	}
	if got := exporterValue(t, f.exporter, "camera_exporter_probes_total", "result", "success"); got != 4 {
		t.Errorf("camera_exporter_probes_total{result=\"success\"} = %v, want 4", got)
	}
}

// TestProbeSuccessWhateverTheCollectors checks that probe_success comes
// from what the probe found, whichever collectors report it: a live camera
// succeeds, and a camera that is not there fails as down, without the
// stream collector's camera_up or the image collector's
// camera_frame_analysis_success in the answer.
func TestProbeSuccessWhateverTheCollectors(t *testing.T) {
	for _, collectors := range [][]string{{"stream"}, {"image"}, {"detection"}, {"drift"}, {"stream", "image"}} {
		t.Run(strings.Join(collectors, ","), func(t *testing.T) {
			f := newFixture(t, fixtureOptions{config: loopbackModule, collectors: collectors})
			live := f.families(url.Values{"target": {target(f, "north")}, "module": {"site"}, "camera": {"gate"}})
			if got := value(live, "probe_success"); got != 1 {
				t.Errorf("live camera: probe_success = %v, want 1; failure: %v", got, live["probe_failure_info"])
			}
			dead := f.families(url.Values{"target": {target(f, "nowhere")}, "module": {"site"}, "camera": {"gone"}})
			if got := value(dead, "probe_success"); got != 0 {
				t.Errorf("missing camera: probe_success = %v, want 0", got)
			}
			if got := value(dead, "probe_failure_info", "reason", "down"); got != 1 {
				t.Errorf("missing camera: failure %v, want down", dead["probe_failure_info"])
			}
		})
	}
}

// exporterValue is the value of the exporter's series of name with labels.
func exporterValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range families {
		byName[f.GetName()] = f
	}
	return value(byName, name, labels...)
}

// listener counts the connections made to an address that probes must not
// connect to.
func listener(t *testing.T) (addr string, accepted *atomic.Int32) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	accepted = &atomic.Int32{}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	return l.Addr().String(), accepted
}

// TestProbeRejects checks that bad requests get 400 and no connection:
// above all, targets outside the module's allowed_targets.
func TestProbeRejects(t *testing.T) {
	f := newFixture(t, fixtureOptions{config: `
auths:
  viewer:
    modules: [site]
    username: viewer
    password: s3cret
modules:
  narrow:
    allowed_targets: [10.0.0.0/8, "*.cam.example"]
  site:
    allowed_targets: [127.0.0.1]
  learning:
    allowed_targets: [127.0.0.1]
    reference:
      dir: refs
cameras:
  - name: configured
    url: rtsp://{{addr}}/east
`})
	addr, accepted := listener(t)
	for _, test := range []struct {
		name   string
		params url.Values
		want   string // in the answer
	}{
		{"no target", url.Values{"module": {"site"}}, "target parameter is missing"},
		{"unknown module", url.Values{"target": {addr}, "module": {"nope"}}, `unknown module "nope"`},
		{"no module", url.Values{"target": {addr}}, `unknown module ""`},
		{"address not allowed", url.Values{"target": {addr + "/north"}, "module": {"narrow"}}, "not in the module's allowed_targets"},
		{"name not allowed", url.Values{"target": {"localhost:" + strings.Split(addr, ":")[1]}, "module": {"site"}}, "not in the module's allowed_targets"},
		{"name like an allowed one", url.Values{"target": {"cam.example.evil.com/x"}, "module": {"narrow"}}, "not in the module's allowed_targets"},
		{"credentials", url.Values{"target": {"rtsp://admin:hunter2@" + addr + "/north"}, "module": {"site"}}, "must not hold credentials"},
		{"scheme", url.Values{"target": {"http://" + addr + "/"}, "module": {"site"}}, "scheme must be rtsp or rtsps"},
		{"unknown auth", url.Values{"target": {addr}, "module": {"site"}, "auth": {"root"}}, `unknown auth "root"`},
		{"bad camera name", url.Values{"target": {addr}, "module": {"site"}, "camera": {"../etc"}}, "must match"},
		{"reference without a camera name", url.Values{"target": {addr}, "module": {"learning"}}, "name the camera"},
		{"configured camera with auth", url.Values{"target": {"configured"}, "auth": {"viewer"}}, "auth and camera parameters do not apply"},
	} {
		t.Run(test.name, func(t *testing.T) {
			code, body := f.probe(test.params)
			if code != http.StatusBadRequest || !strings.Contains(body, test.want) {
				t.Errorf("status %d, %q; want 400 with %q", code, body, test.want)
			}
			if strings.Contains(body, "hunter2") || strings.Contains(body, "s3cret") {
				t.Errorf("the answer discloses a password: %q", body)
			}
		})
	}
	// A connection would have been accepted by now: the listener runs.
	time.Sleep(100 * time.Millisecond)
	if n := accepted.Load(); n != 0 {
		t.Errorf("rejected probes made %d connections", n)
	}
	if got := exporterValue(t, f.exporter, "camera_exporter_probes_total", "result", "rejected"); got != 12 {
		t.Errorf("camera_exporter_probes_total{result=\"rejected\"} = %v, want 12", got)
	}
}

// TestProbeIdleTimeout checks that a session no probe reads ends with a
// TEARDOWN after the idle timeout, and that one still probed stays.
func TestProbeIdleTimeout(t *testing.T) {
	f := newFixture(t, fixtureOptions{config: loopbackModule, idleTimeout: time.Second})
	north := url.Values{"target": {target(f, "north")}, "module": {"site"}}
	south := url.Values{"target": {target(f, "south")}, "module": {"site"}}
	for _, p := range []url.Values{north, south} {
		if got := value(f.families(p), "probe_success"); got != 1 {
			t.Fatalf("probe %s: probe_success = %v, want 1", p.Encode(), got)
		}
	}
	// South is probed on, north no more.
	testutil.WaitFor(t, "the TEARDOWN of the camera no longer probed", 10*time.Second, func() bool {
		f.families(south)
		time.Sleep(200 * time.Millisecond)
		return f.cameras.Teardowns("north") == 1
	})
	if n := f.cameras.Sessions("south"); n != 1 || f.cameras.Teardowns("south") != 0 {
		t.Errorf("the camera still probed has %d sessions and %d TEARDOWNs, want 1 and 0", n, f.cameras.Teardowns("south"))
	}
	if got := exporterValue(t, f.exporter, "camera_exporter_probe_sessions_closed_total", "reason", "idle"); got != 1 {
		t.Errorf("camera_exporter_probe_sessions_closed_total{reason=\"idle\"} = %v, want 1", got)
	}
	// Probed again, it opens again.
	if got := value(f.families(north), "probe_success"); got != 1 {
		t.Errorf("probe after the idle close: probe_success = %v, want 1", got)
	}
}

// TestProbeSessionLimit checks that a probe that would open a session
// beyond the limit fails, without connecting, while open sessions serve on.
func TestProbeSessionLimit(t *testing.T) {
	f := newFixture(t, fixtureOptions{config: loopbackModule, maxSessions: 1})
	north := url.Values{"target": {target(f, "north")}, "module": {"site"}}
	if got := value(f.families(north), "probe_success"); got != 1 {
		t.Fatalf("first camera: probe_success = %v, want 1", got)
	}
	south := f.families(url.Values{"target": {target(f, "south")}, "module": {"site"}})
	if got := value(south, "probe_success"); got != 0 {
		t.Errorf("camera beyond the limit: probe_success = %v, want 0", got)
	}
	if got := value(south, "probe_failure_info", "reason", "session_limit"); got != 1 {
		t.Errorf("camera beyond the limit: probe_failure_info = %v, want reason session_limit", south["probe_failure_info"])
	}
	if n := f.cameras.Sessions("south"); n != 0 {
		t.Errorf("the camera beyond the limit has %d sessions", n)
	}
	if got := value(f.families(north), "probe_success"); got != 1 {
		t.Errorf("first camera, probed again: probe_success = %v, want 1", got)
	}
}

// TestProbeSharedSession checks that concurrent first probes of a camera,
// as an HA pair's, open one session between them.
func TestProbeSharedSession(t *testing.T) {
	f := newFixture(t, fixtureOptions{config: loopbackModule})
	params := url.Values{"target": {target(f, "north")}, "module": {"site"}, "camera": {"north"}}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			code, body := f.probe(params)
			if code != http.StatusOK || !strings.Contains(body, "probe_success 1") {
				t.Errorf("status %d:\n%s", code, body)
			}
		})
	}
	wg.Wait()
	if n := f.cameras.Sessions("north"); n != 1 {
		t.Errorf("4 concurrent probes made %d sessions, want 1", n)
	}
}

// TestProbeAuth checks that an auth block's credentials reach the camera,
// and that a probe without them reports the camera down, refused.
func TestProbeAuth(t *testing.T) {
	f := newFixture(t, fixtureOptions{rtsp: rtsptest.Options{User: "viewer", Pass: "s3cret"}, config: loopbackModule + `
auths:
  viewer:
    modules: [site]
    username: viewer
    password: s3cret
`})
	good := f.families(url.Values{"target": {target(f, "north")}, "module": {"site"}, "auth": {"viewer"}})
	if got := value(good, "probe_success"); got != 1 {
		t.Errorf("with the auth block: probe_success = %v, want 1", got)
	}
	params := url.Values{"target": {target(f, "south")}, "module": {"site"}}
	testutil.WaitFor(t, "the camera refusing a probe without credentials", 10*time.Second, func() bool {
		bad := f.families(params)
		return value(bad, "probe_failure_info", "reason", "down") == 1 &&
			value(bad, "camera_reconnects_total", "reason", "auth") >= 1
	})
}

// TestProbeConfiguredCamera checks that a probe naming a configured camera
// reads its running session instead of opening one.
func TestProbeConfiguredCamera(t *testing.T) {
	f := newFixture(t, fixtureOptions{config: loopbackModule + `
cameras:
  - name: gate
    url: rtsp://{{addr}}/east
`})
	families := f.families(url.Values{"target": {"gate"}})
	if got := value(families, "probe_success"); got != 1 {
		t.Errorf("probe_success = %v, want 1", got)
	}
	if got := value(families, "camera_up", "camera", "gate"); got != 1 {
		t.Errorf("camera_up{camera=\"gate\"} = %v, want 1", got)
	}
	if n := f.cameras.Sessions("east"); n != 1 {
		t.Errorf("the configured camera has %d sessions, want its own 1", n)
	}
	if got := exporterValue(t, f.exporter, "camera_exporter_probe_sessions"); got != 0 {
		t.Errorf("camera_exporter_probe_sessions = %v, want 0: the session is the configuration's", got)
	}
}

// TestProbeReload checks that a reload that changes a module restarts the
// sessions probed with it at their next probe.
func TestProbeReload(t *testing.T) {
	f := newFixture(t, fixtureOptions{config: loopbackModule})
	params := url.Values{"target": {target(f, "north")}, "module": {"site"}}
	if got := value(f.families(params), "probe_success"); got != 1 {
		t.Fatalf("probe_success = %v, want 1", got)
	}
	f.load(loopbackModule + "    dark_threshold: 0.6\n")
	families := f.families(params)
	// Mid-gray is dark under a threshold of 0.6.
	if got := value(families, "camera_frame_dark_pixels_ratio", "camera", target(f, "north")); got != 1 {
		t.Errorf("after the reload: camera_frame_dark_pixels_ratio = %v, want 1; failure: %v", got, families["probe_failure_info"])
	}
	testutil.WaitFor(t, "the TEARDOWN of the replaced session", 10*time.Second, func() bool {
		return f.cameras.Teardowns("north") == 1
	})
	if got := exporterValue(t, f.exporter, "camera_exporter_probe_sessions_closed_total", "reason", "replaced"); got != 1 {
		t.Errorf("camera_exporter_probe_sessions_closed_total{reason=\"replaced\"} = %v, want 1", got)
	}
}

// TestProbeRedirectNotAllowed checks that a camera cannot redirect a probe's
// session to a host outside the module's allowed_targets.
func TestProbeRedirectNotAllowed(t *testing.T) {
	f := newFixture(t, fixtureOptions{config: loopbackModule})
	thief, err := rtsptest.StartFake(rtsptest.FakePlay)
	if err != nil {
		t.Fatal(err)
	}
	defer thief.Close()
	_, port, _ := net.SplitHostPort(thief.Addr)
	redirecting, err := rtsptest.StartFake(func(req rtsptest.FakeRequest) rtsptest.FakeResponse {
		if req.Method != "DESCRIBE" {
			return rtsptest.FakePlay(req)
		}
		// localhost is the same machine, but not a host the module allows.
		return rtsptest.FakeResponse{Status: http.StatusFound, Header: map[string][]string{"Location": {"rtsp://localhost:" + port + "/cam"}}}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer redirecting.Close()
	params := url.Values{"target": {redirecting.Addr + "/cam"}, "module": {"site"}}
	testutil.WaitFor(t, "the redirected probe to fail", 10*time.Second, func() bool {
		return value(f.families(params), "probe_failure_info", "reason", "down") == 1
	})
	if reqs := thief.Requests(); len(reqs) != 0 {
		t.Errorf("the host outside allowed_targets got %d requests", len(reqs))
	}
}

// TestProbeConcurrentReloads probes cameras while reloads change their
// module: every probe answers, and each camera ends with one session.
func TestProbeConcurrentReloads(t *testing.T) {
	f := newFixture(t, fixtureOptions{config: loopbackModule})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, clip := range []string{"north", "south", "east"} {
		params := url.Values{"target": {target(f, clip)}, "module": {"site"}}
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if code, body := f.probe(params); code != http.StatusOK {
					t.Errorf("probe of %s: status %d: %s", clip, code, body)
					return
				}
			}
		})
	}
	for i := range 6 {
		f.load(loopbackModule + fmt.Sprintf("    dark_threshold: 0.%d\n", i+1))
		time.Sleep(150 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	for _, clip := range []string{"north", "south", "east"} {
		params := url.Values{"target": {target(f, clip)}, "module": {"site"}}
		if got := value(f.families(params), "probe_success"); got != 1 {
			t.Errorf("%s after the reloads: probe_success = %v, want 1", clip, got)
		}
		testutil.WaitFor(t, "one session of "+clip, 10*time.Second, func() bool { return f.cameras.Sessions(clip) == 1 })
	}
}

// TestProbeAuthModules checks that an auth block's credentials go only to
// probes of the modules it lists: a request pairing it with another module
// gets 400 before any connection, and a camera that asks for Basic never
// sees them.
func TestProbeAuthModules(t *testing.T) {
	var sawProd atomic.Bool
	prodHeader := "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:Pr0d-S3cret"))
	lab, err := rtsptest.StartFake(func(req rtsptest.FakeRequest) rtsptest.FakeResponse {
		authorization := req.Header.Get("Authorization")
		sawProd.Store(sawProd.Load() || authorization == prodHeader)
		switch {
		case req.Method == "DESCRIBE" && authorization == "":
			return rtsptest.FakeResponse{Status: http.StatusUnauthorized, Header: map[string][]string{"WWW-Authenticate": {`Basic realm="lab"`}}}
		case req.Method == "DESCRIBE":
			// Credentials seen, no stream: the probe fails at once.
			return rtsptest.FakeResponse{Status: http.StatusNotFound}
		}
		return rtsptest.FakePlay(req)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	f := newFixture(t, fixtureOptions{config: `
auths:
  prod:
    modules: [prod]
    username: admin
    password: Pr0d-S3cret
  lab:
    modules: [lab]
    username: tester
    password: lab-pass
modules:
  prod:
    allowed_targets: [127.0.0.1]
  lab:
    allowed_targets: [127.0.0.1]
`})
	addr, accepted := listener(t)
	for _, target := range []string{lab.Addr + "/cam", addr + "/cam"} {
		code, body := f.probe(url.Values{"target": {target}, "module": {"lab"}, "auth": {"prod"}})
		if want := `auth "prod" is not for module "lab"`; code != http.StatusBadRequest || !strings.Contains(body, want) {
			t.Errorf("target %s: status %d, %q; want 400 with %q", target, code, body, want)
		}
		if strings.Contains(body, "Pr0d-S3cret") || strings.Contains(body, "admin") {
			t.Errorf("the answer discloses the credentials: %q", body)
		}
	}
	// The lab's own block reaches it: the fake would have seen prod's.
	params := url.Values{"target": {lab.Addr + "/cam"}, "module": {"lab"}, "auth": {"lab"}}
	labHeader := "Basic " + base64.StdEncoding.EncodeToString([]byte("tester:lab-pass"))
	testutil.WaitFor(t, "the lab camera to get the lab's credentials", 10*time.Second, func() bool {
		f.probe(params)
		for _, req := range lab.Requests() {
			if req.Header.Get("Authorization") == labHeader {
				return true
			}
		}
		return false
	})
	if sawProd.Load() {
		t.Error("the lab camera received the production credentials")
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("the refused pairing made %d connections", n)
	}
	if got := exporterValue(t, f.exporter, "camera_exporter_probes_total", "result", "rejected"); got != 2 {
		t.Errorf("camera_exporter_probes_total{result=\"rejected\"} = %v, want 2", got)
	}
}

// learnReference probes until the probed camera's reference is learned.
func learnReference(t *testing.T, f *fixture, params url.Values) map[string]*dto.MetricFamily {
	t.Helper()
	var families map[string]*dto.MetricFamily
	testutil.WaitFor(t, "the reference of "+params.Get("camera")+" learned", 60*time.Second, func() bool {
		families = f.families(params)
		return value(families, "camera_reference_frames") > 0
	})
	return families
}

// TestProbeReferenceIsolation is the poisoning of issue 20: probes of
// another stream named after a configured camera, while it calibrates,
// must not write its reference file. camera= cannot take a configured
// camera's name, and the references that probes learn live in their
// module's own directory, under names no configured camera's file has.
func TestProbeReferenceIsolation(t *testing.T) {
	refs, probeRefs := t.TempDir(), t.TempDir()
	f := newFixture(t, fixtureOptions{config: fmt.Sprintf(`
defaults:
  decode: all
  reference:
    dir: %s
    calibration: 1s
modules:
  m:
    allowed_targets: [127.0.0.0/8]
  learning:
    allowed_targets: [127.0.0.0/8]
    reference:
      dir: %s
      calibration: 1s
cameras:
  - name: gate
    url: rtsp://{{addr}}/east
`, refs, probeRefs)})
	for _, module := range []string{"m", "learning"} {
		code, body := f.probe(url.Values{"target": {target(f, "north")}, "module": {module}, "camera": {"gate"}})
		if want := `camera "gate" is a configured camera`; code != http.StatusBadRequest || !strings.Contains(body, want) {
			t.Errorf("module %s, camera=gate: status %d, %q; want 400 with %q", module, code, body, want)
		}
	}
	if n := f.cameras.Sessions("north"); n != 0 {
		t.Errorf("the refused probes opened %d sessions", n)
	}
	// A probe of another name learns its reference in its module's
	// directory; one of a module without its own directory learns none.
	learned := learnReference(t, f, url.Values{"target": {target(f, "north")}, "module": {"learning"}, "camera": {"yard"}})
	if got := value(learned, "camera_reference_calibrating", "camera", "yard"); got != 0 {
		t.Errorf("camera_reference_calibrating after learning = %v, want 0", got)
	}
	plain := f.families(url.Values{"target": {target(f, "south")}, "module": {"m"}, "camera": {"shed"}})
	if got := value(plain, "camera_reference_calibrating", "camera", "shed"); !math.IsNaN(got) {
		t.Errorf("a module without reference.dir: camera_reference_calibrating = %v, want none", got)
	}
	saved, err := filepath.Glob(filepath.Join(probeRefs, "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(saved) != 1 || !strings.HasPrefix(filepath.Base(saved[0]), "yard.") || !config.IsProbeReference(filepath.Base(saved[0])) {
		t.Errorf("the module's reference directory holds %v, want one yard.<hash>.json", saved)
	} else if fi, err := os.Stat(saved[0]); err != nil {
		t.Error(err)
	} else if fi.Size() > 256<<10 {
		// A signature of 160x90 and the features' bins: about 150 kB,
		// whatever the picture.
		t.Errorf("the saved reference has %d bytes, want at most 256 KiB", fi.Size())
	}
	// The configured camera's directory got nothing from the probes; and
	// the configured camera is still probed by its name.
	if entries, err := os.ReadDir(refs); err != nil || len(entries) != 0 {
		t.Errorf("the configured cameras' reference directory holds %v (%v), want nothing", entries, err)
	}
	if got := value(f.families(url.Values{"target": {"gate"}}), "camera_up", "camera", "gate"); got != 1 {
		t.Errorf("probe of the configured camera: camera_up = %v, want 1", got)
	}
}

// learningModule is a fixture whose module "learning" keeps at most two
// references in dir, each learned over calibration.
func learningModule(dir, calibration string) fixtureOptions {
	return fixtureOptions{config: fmt.Sprintf(`
defaults:
  decode: all
modules:
  learning:
    allowed_targets: [127.0.0.0/8]
    reference_file_limit: 2
    reference:
      dir: %s
      calibration: %s
`, dir, calibration)}
}

// TestProbeReferenceFileLimit checks that a client naming ever new cameras
// cannot fill the disk: a module's directory keeps reference_file_limit
// references, counting those that open sessions are learning, and a
// camera probed beyond it learns none.
func TestProbeReferenceFileLimit(t *testing.T) {
	probeRefs := t.TempDir()
	f := newFixture(t, learningModule(probeRefs, "1s"))
	probe := func(name string) map[string]*dto.MetricFamily {
		return f.families(url.Values{"target": {target(f, "north")}, "module": {"learning"}, "camera": {name}})
	}
	// Four sessions open at once: the first two may learn.
	for i, name := range []string{"c0", "c1", "c2", "c3"} {
		want := 0.0
		if i < 2 {
			want = 1
		}
		if got := value(probe(name), "camera_reference_calibrating", "camera", name); got != want {
			t.Errorf("%s: camera_reference_calibrating = %v, want %v", name, got, want)
		}
	}
	for _, name := range []string{"c0", "c1"} {
		learnReference(t, f, url.Values{"target": {target(f, "north")}, "module": {"learning"}, "camera": {name}})
	}
	// Learned and saved, they still count; so does nothing else.
	for _, name := range []string{"c2", "c3", "c4"} {
		families := probe(name)
		if got := value(families, "camera_reference_calibrating", "camera", name); got != 0 {
			t.Errorf("%s: camera_reference_calibrating = %v, want 0", name, got)
		}
		if got := value(families, "camera_reference_frames", "camera", name); !math.IsNaN(got) {
			t.Errorf("%s: camera_reference_frames = %v, want none", name, got)
		}
	}
	entries, err := os.ReadDir(probeRefs)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 2 || !strings.HasPrefix(names[0], "c0.") || !strings.HasPrefix(names[1], "c1.") {
		t.Errorf("the module's reference directory holds %v, want c0's and c1's references", names)
	}
}

// TestProbeReferenceDirUnlisted probes with a module whose reference.dir
// cannot be listed, as one of mode -wx: its references cannot be counted
// against reference_file_limit, so that the probed camera learns none,
// and writes none there.
func TestProbeReferenceDirUnlisted(t *testing.T) {
	probeRefs := t.TempDir()
	f := newFixture(t, learningModule(probeRefs, "1s"))
	probe.SetReadDir(f.probes, func(dir string) ([]fs.DirEntry, error) {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: syscall.EACCES}
	})
	families := f.families(url.Values{"target": {target(f, "north")}, "module": {"learning"}, "camera": {"c0"}})
	if got := value(families, "camera_reference_calibrating", "camera", "c0"); got != 0 {
		t.Errorf("camera_reference_calibrating = %v, want 0", got)
	}
	if entries, err := os.ReadDir(probeRefs); err != nil || len(entries) != 0 {
		t.Errorf("the module's reference directory holds %v (%v), want nothing", entries, err)
	}
}

// TestProbeReferenceFileLimitConcurrent checks the limit when the sessions
// open at once: exactly reference_file_limit of them learn.
func TestProbeReferenceFileLimitConcurrent(t *testing.T) {
	f := newFixture(t, learningModule(t.TempDir(), "1h"))
	var learning atomic.Int32
	var wg sync.WaitGroup
	for i := range 6 {
		name := fmt.Sprintf("c%d", i)
		wg.Go(func() {
			code, body := f.probe(url.Values{"target": {target(f, "north")}, "module": {"learning"}, "camera": {name}})
			if code != http.StatusOK {
				t.Errorf("probe of %s: status %d: %s", name, code, body)
			}
			if strings.Contains(body, fmt.Sprintf("camera_reference_calibrating{camera=%q} 1\n", name)) {
				learning.Add(1)
			}
		})
	}
	wg.Wait()
	if n := learning.Load(); n != 2 {
		t.Errorf("%d of 6 sessions opened at once learn a reference, want 2", n)
	}
}
