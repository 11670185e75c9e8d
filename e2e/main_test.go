// Package e2e holds the end-to-end tests: they build the exporter binary
// from the repository root and run it against the in-process RTSP server,
// the shared models and photographs, promtool and Chromium.
package e2e

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite testdata/metrics.txt from the current output")

// The credentials the test RTSP server demands; they must never show.
const (
	cameraUser = "viewer"
	cameraPass = "Pa55-never-shown"
)

var binary string

// repoRoot is the repository root, which holds go.mod, the shipped files
// and the Makefile; the data shared by every checkout sits beside it.
var repoRoot = findRepoRoot()

// findRepoRoot walks up from the test's directory to go.mod.
func findRepoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			panic("no go.mod above the end-to-end tests")
		}
		dir = parent
	}
}

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "camera-exporter-e2e")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "camera_exporter")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Dir = repoRoot
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// exporter is a running camera_exporter process.
type exporter struct {
	cmd    *exec.Cmd
	addr   string
	config string
	logs   *testutil.SyncBuffer
}

func startExporter(t testing.TB, configYAML string, args ...string) *exporter {
	t.Helper()
	path := filepath.Join(t.TempDir(), "exporter.yml")
	if err := os.WriteFile(path, []byte(configYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	return startExporterWithConfig(t, path, args...)
}

// startExporterWithConfig runs the exporter on a configuration file until
// the test ends or stop.
func startExporterWithConfig(t testing.TB, path string, args ...string) *exporter {
	t.Helper()
	e := &exporter{addr: testutil.FreeAddr(t), config: path, logs: &testutil.SyncBuffer{}}
	e.cmd = exec.Command(binary, append([]string{"--config.file=" + e.config, "--web.listen-address=" + e.addr, "--log.level=debug"}, args...)...)
	e.cmd.Stdout, e.cmd.Stderr = e.logs, e.logs
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.stop(t) })
	// Any answer: behind a web config's basic auth, it is 401.
	testutil.WaitFor(t, "the exporter to listen", 10*time.Second, func() bool {
		resp, err := http.Get("http://" + e.addr + "/-/healthy")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	return e
}

// stop ends the exporter as systemd would, and waits for it.
func (e *exporter) stop(t testing.TB) {
	t.Helper()
	if e.cmd.ProcessState != nil {
		return
	}
	e.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // may have exited
	if exited, _ := e.wait(10 * time.Second); !exited {
		t.Errorf("the exporter still ran 10s after SIGTERM; killed it\n%s", e.logs)
	}
}

// wait waits for the exporter to exit and returns Wait's error; after
// timeout it kills it and returns exited false.
func (e *exporter) wait(timeout time.Duration) (exited bool, err error) {
	done := make(chan error, 1)
	go func() { done <- e.cmd.Wait() }()
	select {
	case err := <-done:
		return true, err
	case <-time.After(timeout):
		e.cmd.Process.Kill() //nolint:errcheck // may have exited meanwhile
		return false, <-done
	}
}

func (e *exporter) get(path string, header http.Header) (string, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+e.addr+path, nil)
	if err != nil {
		return "", err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	return do(req)
}

func do(req *http.Request) (string, error) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(body), fmt.Errorf("%s: %s", resp.Status, body)
	}
	return string(body), err
}

// sample returns the value of the series written exactly as series.
func sample(metrics, series string) (float64, bool) {
	for _, line := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

func TestEndToEnd(t *testing.T) {
	srv, err := rtsptest.Start(rtsptest.Options{User: cameraUser, Pass: cameraPass}, map[string]*rtsptest.Media{
		"gray":  rtsptest.Clip(t, rtsptest.H264, "color=c=0x404040:s=320x240:r=25", 25),
		"half":  rtsptest.Clip(t, rtsptest.H265, "color=c=white:s=320x240:r=25,drawbox=x=0:y=0:w=160:h=240:color=black:t=fill", 25),
		"light": rtsptest.Clip(t, rtsptest.MJPEG, "color=c=0xc8c8c8:s=320x240:r=25", 5),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL(""), "rtsp://")
	passFile := filepath.Join(t.TempDir(), "light.pass")
	if err := os.WriteFile(passFile, []byte(cameraPass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	silent := testutil.SilentAddr(t)
	cfg := testutil.DetectorBlock(t, "") + fmt.Sprintf(`defaults:
  detect:
    classes: [person]
cameras:
  - name: gate-north
    url: rtsp://%[1]s:%[2]s@%[3]sgray
  - name: gate-south
    url: rtsp://%[3]shalf
    username: %[1]s
    password: %[2]s
  - name: yard
    url: rtsp://%[3]slight
    username: %[1]s
    password_file: %[4]s
  - name: silent
    url: rtsp://%[5]s/stream
    timeout: 2s
`, cameraUser, cameraPass, host, passFile, silent)
	e := startExporter(t, cfg)

	var metrics string
	// A scrape can read a camera's status just before its first SPS, and
	// analyze the key frame that comes right after: the size is known by
	// the next scrape.
	testutil.WaitFor(t, "all three cameras analyzed and sized", 30*time.Second, func() bool {
		metrics, _ = e.get("/metrics", nil)
		return strings.Count(metrics, "camera_frame_brightness_ratio{") == 3 && !strings.Contains(metrics, `width="0"`)
	})

	t.Run("values", func(t *testing.T) {
		for _, tc := range []struct {
			series string
			want   float64
			tol    float64
		}{
			{`camera_up{camera="gate-north"}`, 1, 0},
			{`camera_up{camera="silent"}`, 0, 0},
			{`camera_frame_brightness_ratio{camera="gate-north"}`, 64.0 / 255, 0.005},
			{`camera_frame_brightness_ratio{camera="yard"}`, 200.0 / 255, 0.005},
			{`camera_frame_dark_pixels_ratio{camera="gate-south"}`, 0.5, 0.01},
			{`camera_frame_dark_pixels_ratio{camera="gate-north"}`, 0, 0},
			{`camera_exporter_config_last_reload_successful`, 1, 0},
		} {
			got, ok := sample(metrics, tc.series)
			if !ok || math.Abs(got-tc.want) > tc.tol {
				t.Errorf("%s = %v (found %v), want %v ± %v", tc.series, got, ok, tc.want, tc.tol)
			}
		}
	})

	t.Run("promtool", func(t *testing.T) {
		cmd := exec.Command("promtool", "check", "metrics")
		cmd.Stdin = strings.NewReader(metrics)
		out, err := cmd.CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	})

	t.Run("fixture", func(t *testing.T) {
		got := normalize(metrics)
		fixture := filepath.Join("testdata", "metrics.txt")
		if *update {
			if err := os.WriteFile(fixture, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(fixture)
		if err != nil {
			t.Fatal(err)
		}
		if got != string(want) {
			t.Errorf("/metrics differs from %s (rerun with -update after checking):\n%s", fixture, lineDiff(string(want), got))
		}
	})

	t.Run("no credentials anywhere", func(t *testing.T) {
		pages := map[string]string{"/metrics": metrics}
		for _, path := range []string{"/", "/config"} {
			body, err := e.get(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			pages[path] = body
		}
		if !strings.Contains(pages["/config"], "<secret>") {
			t.Errorf("/config does not mark secrets:\n%s", pages["/config"])
		}
		pages["logs"] = e.logs.String()
		for where, text := range pages {
			if strings.Contains(text, cameraPass) {
				t.Errorf("password leaked in %s", where)
			}
		}
	})

	t.Run("reload", func(t *testing.T) {
		post := func() error {
			req, _ := http.NewRequest(http.MethodPost, "http://"+e.addr+"/-/reload", nil)
			_, err := do(req)
			return err
		}
		if _, err := e.get("/-/reload", nil); err == nil || !strings.Contains(err.Error(), "405") {
			t.Errorf("GET /-/reload: %v, want 405", err)
		}

		// A broken file is refused and the cameras keep running.
		os.WriteFile(e.config, []byte(cfg+"    bogus_field: 1\n"), 0o600) //nolint:errcheck
		if err := post(); err == nil || !strings.Contains(err.Error(), "bogus_field") {
			t.Errorf("reload of a bad file: %v, want an error naming bogus_field", err)
		}
		after, _ := e.get("/metrics", nil)
		if v, _ := sample(after, "camera_exporter_config_last_reload_successful"); v != 0 {
			t.Error("last_reload_successful not 0 after a failed reload")
		}
		if v, _ := sample(after, `camera_up{camera="gate-north"}`); v != 1 {
			t.Error("cameras stopped after a failed reload")
		}
		framesBefore, _ := sample(after, `camera_frames_received_total{camera="gate-north"}`)

		// Dropping a camera by SIGHUP removes its series; others keep counting.
		trimmed := cfg[:strings.Index(cfg, "  - name: silent")]
		os.WriteFile(e.config, []byte(trimmed), 0o600) //nolint:errcheck
		if err := e.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, "the SIGHUP reload", 10*time.Second, func() bool {
			m, _ := e.get("/metrics", nil)
			return !strings.Contains(m, `camera="silent"`)
		})
		m, _ := e.get("/metrics", nil)
		if v, _ := sample(m, "camera_exporter_config_last_reload_successful"); v != 1 {
			t.Error("last_reload_successful not 1 after a good reload")
		}
		if v, _ := sample(m, `camera_frames_received_total{camera="gate-north"}`); v < framesBefore {
			t.Errorf("unchanged camera's counter restarted: %v < %v", v, framesBefore)
		}
	})
}

var (
	exporterOwnMetrics = regexp.MustCompile(`^(# (HELP|TYPE) )?(go_|process_|promhttp_|camera_exporter_build_info|camera_exporter_config_last_reload_success_timestamp)`)
	sampleLine         = regexp.MustCompile(`^([a-z_]+)(\{[^}]*\})? (\S+)$`)
	stableValues       = regexp.MustCompile(`^camera_(up|session_up|info|frame_analysis_success|exporter_config_last_reload_successful|scrape_collector_success|decode_errors_total|rtp_packets_lost_total|detector_info|detected_objects)$`)
	roundedValues      = regexp.MustCompile(`^camera_frame_(brightness|contrast|dark_pixels)_ratio$`)
)

// normalize keeps what a fixture can pin down: every family, label set and
// HELP text, with values that vary between runs replaced by "X" and image
// statistics rounded.
func normalize(metrics string) string {
	var out strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(metrics), "\n") {
		if exporterOwnMetrics.MatchString(line) {
			continue
		}
		if m := sampleLine.FindStringSubmatch(line); m != nil {
			switch {
			case stableValues.MatchString(m[1]):
			case roundedValues.MatchString(m[1]):
				v, _ := strconv.ParseFloat(m[3], 64)
				line = fmt.Sprintf("%s%s %.2f", m[1], m[2], v)
			default:
				line = m[1] + m[2] + " X"
			}
		}
		out.WriteString(line + "\n")
	}
	return out.String()
}

func lineDiff(want, got string) string {
	wantLines := map[string]bool{}
	for _, l := range strings.Split(want, "\n") {
		wantLines[l] = true
	}
	gotLines := map[string]bool{}
	var b strings.Builder
	for _, l := range strings.Split(got, "\n") {
		gotLines[l] = true
		if !wantLines[l] {
			b.WriteString("+ " + l + "\n")
		}
	}
	for _, l := range strings.Split(want, "\n") {
		if !gotLines[l] {
			b.WriteString("- " + l + "\n")
		}
	}
	return b.String()
}

// shippedExample returns a copy of the repository's exporter.yml next to
// the models `make models` would download, taken from the shared data.
func shippedExample(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join(repoRoot, "exporter.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "exporter.yml"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(mustAbs(t, sharedModels), filepath.Join(dir, "models")); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "exporter.yml")
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yml")
	bad := filepath.Join(dir, "bad.yml")
	os.WriteFile(good, []byte("cameras:\n  - name: a\n    url: rtsp://u:Sekrit-1@10.0.0.5/s\n"), 0o600)                    //nolint:errcheck
	os.WriteFile(bad, []byte("cameras:\n  - name: a\n    url: rtsp://u:Sekrit-1@10.0.0.5/s\n    transprot: tcp\n"), 0o600) //nolint:errcheck
	probes := filepath.Join(dir, "probes.yml")
	badProbes := filepath.Join(dir, "bad-probes.yml")
	os.WriteFile(probes, []byte("auths:\n  viewer:\n    modules: [site]\n    username: u\n    password: Sekrit-1\nmodules:\n  site:\n    allowed_targets: [10.0.0.0/8]\n"), 0o600) //nolint:errcheck
	os.WriteFile(badProbes, []byte("auths:\n  viewer:\n    password: Sekrit-1\nmodules:\n  site:\n    transport: tcp\n"), 0o600)                                                   //nolint:errcheck

	// A FIFO blocked the check until a writer came.
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	fifoLabels := filepath.Join(dir, "fifo-labels.yml")
	os.WriteFile(fifoLabels, []byte(strings.Replace(testutil.DetectorBlock(t, ""), mustAbs(t, cocoModel)+"/coco.names", fifo, 1)), 0o600) //nolint:errcheck
	fifoModel := filepath.Join(dir, "fifo-model.yml")
	os.WriteFile(fifoModel, []byte(strings.Replace(testutil.DetectorBlock(t, ""), mustAbs(t, cocoModel)+"/yolo-fastest-1.1.weights", fifo, 1)), 0o600) //nolint:errcheck

	for _, tc := range []struct {
		file     string
		wantCode int
		want     []string
	}{
		{fifoLabels, 1, []string{"fifo-labels.yml:4: detector: labels: " + fifo + ": not a regular file but a named pipe (FIFO)"}},
		{fifoModel, 1, []string{"fifo-model.yml:2: detector: model: " + fifo + ": not a regular file but a named pipe (FIFO)"}},
		{fifo, 1, []string{fifo + ": not a regular file but a named pipe (FIFO)"}},
		{good, 0, []string{"valid", "1 cameras"}},
		{shippedExample(t), 0, []string{"valid, 2 cameras, detector", "yolo-fastest-1.1.weights loads: darknet layout, 320x320 input, 80 classes, opencv backend on cpu"}},
		{bad, 1, []string{"bad.yml:4", "transprot"}},
		{probes, 0, []string{"valid, 0 cameras, 1 probe modules, no detector"}},
		{badProbes, 1, []string{`bad-probes.yml:2: auth "viewer": missing username`, `bad-probes.yml:5: module "site": missing allowed_targets`}},
		{filepath.Join(dir, "missing.yml"), 1, []string{"missing.yml"}},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second) // only ends a blocked check
		out, err := exec.CommandContext(ctx, binary, "--config.check", "--config.file="+tc.file).CombinedOutput()
		cancel()
		code := 0
		if exitErr, ok := err.(*exec.ExitError); ok {
			code = exitErr.ExitCode()
		}
		if code != tc.wantCode {
			t.Errorf("%s: exit code %d, want %d\n%s", filepath.Base(tc.file), code, tc.wantCode, out)
		}
		for _, want := range tc.want {
			if !strings.Contains(string(out), want) {
				t.Errorf("%s: output lacks %q:\n%s", filepath.Base(tc.file), want, out)
			}
		}
		if strings.Contains(string(out), "Sekrit-1") {
			t.Errorf("%s: password in output:\n%s", filepath.Base(tc.file), out)
		}
	}
}

// TestShutdown checks that SIGTERM, as systemd sends, and SIGINT, as ^C
// does, end the exporter within a few seconds with exit code 0, every
// camera's session closed with a TEARDOWN: a camera with few session slots
// keeps a dead session until its timeout, and refuses the restarted
// exporter meanwhile.
func TestShutdown(t *testing.T) {
	clip := rtsptest.Clip(t, rtsptest.H264, "color=c=gray:s=160x120:r=25", 25)
	cameras := []string{"gate", "yard"}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			srv, err := rtsptest.Start(rtsptest.Options{}, map[string]*rtsptest.Media{"gate": clip, "yard": clip, "probed": clip})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			// A camera that only a probe watches ends with a TEARDOWN too.
			cfg := "modules:\n  local:\n    allowed_targets: [127.0.0.1]\ncameras:\n"
			for _, name := range cameras {
				cfg += fmt.Sprintf("  - name: %s\n    url: %s\n", name, srv.URL(name))
			}
			e := startExporter(t, cfg)
			testutil.WaitFor(t, "every camera up", 30*time.Second, func() bool {
				m, _ := e.get("/metrics", nil)
				for _, name := range cameras {
					if v, _ := sample(m, fmt.Sprintf("camera_up{camera=%q}", name)); v != 1 {
						return false
					}
				}
				p, _ := e.get("/probe?module=local&target="+url.QueryEscape(srv.URL("probed")), nil)
				return strings.Contains(p, "probe_success 1")
			})
			before := map[string]int{}
			for _, name := range append(cameras, "probed") {
				before[name] = srv.Teardowns(name)
			}

			start := time.Now()
			if err := e.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			exited, err := e.wait(30 * time.Second)
			took := time.Since(start)
			if !exited {
				t.Fatalf("still running 30s after %v; killed it\n%s", sig, e.logs)
			}
			if ws, ok := e.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				t.Fatalf("killed by %v, want an exit\n%s", ws.Signal(), e.logs)
			}
			if err != nil {
				t.Errorf("%v: %v, want exit code 0\n%s", sig, err, e.logs)
			}
			if took > 5*time.Second {
				t.Errorf("exited %v after %v, want within 5s", took.Round(time.Millisecond), sig)
			}
			// The server counts a TEARDOWN when it reads it; the exporter
			// may be gone by then.
			for _, name := range append(cameras, "probed") {
				testutil.WaitFor(t, "the TEARDOWN of "+name, 2*time.Second, func() bool {
					return srv.Teardowns(name) > before[name]
				})
			}
			if want := `msg="Shutting down" signal=` + sig.String(); !strings.Contains(e.logs.String(), want) {
				t.Errorf("no %s in the logs:\n%s", want, e.logs)
			}
		})
	}
}
