package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
	"github.com/prometheus/client_golang/prometheus"
)

// TestReloader checks that reloads asked for by POST and SIGHUP run one at
// a time, that POST answers with each one's outcome, and that stop waits
// for the reload in progress and refuses the next.
func TestReloader(t *testing.T) {
	var running, overlaps, calls atomic.Int32
	release := make(chan struct{})
	reload := func(context.Context) error {
		if running.Add(1) > 1 {
			overlaps.Add(1)
		}
		defer running.Add(-1)
		n := calls.Add(1)
		if n == 1 {
			<-release // the first reload waits for the test
		}
		time.Sleep(5 * time.Millisecond)
		if n%2 == 0 {
			return fmt.Errorf("reload %d failed", n)
		}
		return nil
	}
	hup := make(chan os.Signal, 1)
	r := startReloader(reload, hup)
	srv := httptest.NewServer(r)
	defer srv.Close()
	post := func() (int, string) {
		resp, err := http.Post(srv.URL, "", nil)
		if err != nil {
			t.Error(err)
			return 0, ""
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	hup <- os.Interrupt // any signal: the first reload, held
	testutil.WaitFor(t, "the first reload", 5*time.Second, func() bool { return calls.Load() == 1 })
	var wg sync.WaitGroup
	results := make(chan string, 6)
	for range cap(results) {
		wg.Go(func() {
			code, body := post()
			results <- strings.TrimSpace(fmt.Sprint(code, " ", body))
		})
	}
	time.Sleep(50 * time.Millisecond) // the POSTs wait for the held reload
	if n := calls.Load(); n != 1 {
		t.Errorf("%d reloads while the first was running, want it alone", n)
	}
	close(release)
	wg.Wait()
	close(results)
	var ok, failed int
	for res := range results {
		switch {
		case res == "200":
			ok++
		case strings.HasPrefix(res, "500 failed to reload config: reload ") && strings.HasSuffix(res, " failed"):
			failed++
		default:
			t.Errorf("POST answered %q", res)
		}
	}
	if ok != 3 || failed != 3 {
		t.Errorf("%d POSTs succeeded and %d failed, want 3 and 3 (every second reload fails)", ok, failed)
	}
	if n := overlaps.Load(); n != 0 {
		t.Errorf("%d reloads overlapped another", n)
	}

	// stop waits for the reload in progress, and no reload starts after.
	release = make(chan struct{})
	calls.Store(0)
	hup <- os.Interrupt
	testutil.WaitFor(t, "a held reload", 5*time.Second, func() bool { return calls.Load() == 1 })
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := r.stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("stop during a held reload: %v, want it to time out", err)
	}
	close(release)
	if err := r.stop(t.Context()); err != nil {
		t.Errorf("stop: %v", err)
	}
	if code, _ := post(); code != http.StatusServiceUnavailable {
		t.Errorf("POST after stop: %d, want 503", code)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d reloads after stop", n-1)
	}
}

// TestReloaderStopEndsReload checks that stop ends the context of a reload
// in progress, so that a reload stuck on a file does not keep the shutdown
// from closing the cameras.
func TestReloaderStopEndsReload(t *testing.T) {
	started := make(chan struct{})
	var cause error
	r := startReloader(func(ctx context.Context) error {
		close(started)
		<-ctx.Done() // as SafeConfig.Reload returns when a load blocks
		cause = context.Cause(ctx)
		return cause
	}, make(chan os.Signal))
	go func() {
		req := httptest.NewRequest(http.MethodPost, "/-/reload", nil)
		r.ServeHTTP(httptest.NewRecorder(), req)
	}()
	<-started
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second) // only ends a deadlock
	defer cancel()
	if err := r.stop(ctx); err != nil {
		t.Fatalf("stop during a reload stuck until its context ends: %v", err)
	}
	if !errors.Is(cause, errShuttingDown) {
		t.Errorf("the reload's context ended with %v, want %v", cause, errShuttingDown)
	}
}

// TestReloadAtShutdown ends a reload as the shutdown does: it is logged at
// info level, not as an error, and
// camera_exporter_config_last_reload_successful keeps reading 1, since the
// file did not fail.
func TestReloadAtShutdown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "exporter.yml")
	if err := os.WriteFile(path, []byte("cameras: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	sc := config.NewSafeConfig(reg, func(*config.Config) error { return nil }, time.Minute)
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if err := reloadConfig(t.Context(), sc, path, logger); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(t.Context())
	cancel(errShuttingDown)
	logs.Reset()
	if err := reloadConfig(ctx, sc, path, logger); !errors.Is(err, errShuttingDown) {
		t.Errorf("reload at shutdown: %v, want %v", err, errShuttingDown)
	}
	if got := logs.String(); !strings.HasPrefix(got, "time=") || !strings.Contains(got, " level=INFO ") || strings.Contains(got, "level=ERROR") || !strings.Contains(got, "shutting down") {
		t.Errorf("reload at shutdown logged %q, want one line at info level saying it is shutting down", got)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, f := range families {
		if f.GetName() == "camera_exporter_config_last_reload_successful" {
			found = true
			if v := f.GetMetric()[0].GetGauge().GetValue(); v != 1 {
				t.Errorf("camera_exporter_config_last_reload_successful = %v after a reload ended by the shutdown, want 1", v)
			}
		}
	}
	if !found {
		t.Error("camera_exporter_config_last_reload_successful is missing")
	}
}

// TestReloadBadFiles reloads, by POST /-/reload and SIGHUP, configurations
// that name a FIFO, which blocked the reload and every later one, or a file
// too large to be what it stands for: each reload fails at once with an
// error naming the file, line and field, camera_exporter_config_last_reload_successful
// reads 0, the camera of the last good configuration is still served, a
// good configuration reloads after, and SIGTERM still ends every session.
func TestReloadBadFiles(t *testing.T) {
	clip := rtsptest.Clip(t, rtsptest.H264, "color=c=gray:s=160x120:r=25", 25)
	srv, err := rtsptest.Start(rtsptest.Options{}, map[string]*rtsptest.Media{"gate": clip, "yard": clip})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// A writer ends a read that blocks on the FIFO, as the unfixed
	// exporter's does, so that the test ends.
	t.Cleanup(func() {
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
	oversize := filepath.Join(dir, "oversize.names")
	if err := os.WriteFile(oversize, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(oversize, 64<<20); err != nil { // sparse
		t.Fatal(err)
	}
	gate := fmt.Sprintf("cameras:\n  - name: gate\n    url: %s\n", srv.URL("gate"))
	e := startExporter(t, gate, "--config.reload-timeout=5s")
	metrics := func() string {
		m, err := e.get("/metrics", nil)
		if err != nil {
			t.Error(err)
		}
		return m
	}
	testutil.WaitFor(t, "gate up", 30*time.Second, func() bool {
		v, _ := sample(metrics(), `camera_up{camera="gate"}`)
		return v == 1
	})
	labels := func(path string) string {
		return strings.Replace(detectorBlock(t, ""), mustAbs(t, cocoModel)+"/coco.names", path, 1)
	}
	yard := fmt.Sprintf("  - name: yard\n    url: %s\n", srv.URL("yard"))
	client := &http.Client{Timeout: 10 * time.Second} // the unfixed exporter never answers
	for _, tc := range []struct {
		name, config string
		sighup       bool
		want         string // the error, after the configuration file's name
	}{
		{"labels FIFO by POST", labels(fifo) + gate + yard, false,
			":4: detector: labels: " + fifo + ": not a regular file but a named pipe (FIFO)"},
		{"password_file FIFO by SIGHUP", gate + yard + "    username: viewer\n    password_file: " + fifo + "\n", true,
			`:7: camera "yard": password_file: ` + fifo + ": not a regular file but a named pipe (FIFO)"},
		{"oversize labels by POST", labels(oversize) + gate + yard, false,
			":4: detector: labels: " + oversize + ": larger than the 1 MiB that a labels file may hold"},
		{"labels FIFO by SIGHUP", labels(fifo) + gate, true,
			":4: detector: labels: " + fifo + ": not a regular file but a named pipe (FIFO)"},
	} {
		// The good configuration in between sets the gauge to 1.
		for _, step := range []struct {
			config string
			sighup bool
			want   string
		}{{gate, false, ""}, {tc.config, tc.sighup, e.config + tc.want}} {
			if err := os.WriteFile(e.config, []byte(step.config), 0o600); err != nil {
				t.Fatal(err)
			}
			logged := strings.Count(e.logs.String(), "Error reloading config")
			if step.sighup {
				if err := e.cmd.Process.Signal(syscall.SIGHUP); err != nil {
					t.Fatal(err)
				}
				testutil.WaitFor(t, tc.name+": the reload to fail", 10*time.Second, func() bool {
					return strings.Count(e.logs.String(), "Error reloading config") > logged
				})
				if !strings.Contains(e.logs.String(), strconv.Quote(step.want)) {
					t.Errorf("%s: logs lack %q:\n%s", tc.name, step.want, e.logs)
				}
			} else {
				resp, err := client.Post("http://"+e.addr+"/-/reload", "", nil)
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				got := strings.TrimSpace(fmt.Sprint(resp.StatusCode, " ", string(body)))
				want := "200"
				if step.want != "" {
					want = "500 failed to reload config: " + step.want
				}
				if got != want {
					t.Errorf("%s: POST /-/reload answered %q, want %q", tc.name, got, want)
				}
			}
			m := metrics()
			wantOK := 1.0
			if step.want != "" {
				wantOK = 0
			}
			if v, _ := sample(m, "camera_exporter_config_last_reload_successful"); v != wantOK {
				t.Errorf("%s: camera_exporter_config_last_reload_successful %v, want %v", tc.name, v, wantOK)
			}
			if v, _ := sample(m, `camera_up{camera="gate"}`); v != 1 {
				t.Errorf("%s: camera_up{camera=\"gate\"} %v, want the configuration in force still served", tc.name, v)
			}
			if _, ok := sample(m, `camera_up{camera="yard"}`); ok {
				t.Errorf("%s: camera yard is served, from a configuration that failed", tc.name)
			}
		}
	}

	before := srv.Teardowns("gate")
	e.stop(t)
	if code := e.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0\n%s", code, e.logs)
	}
	testutil.WaitFor(t, "the TEARDOWN of gate", 2*time.Second, func() bool { return srv.Teardowns("gate") > before })
}

// TestReloadTimeoutFlag checks that a reload timeout that would fail every
// reload is refused at start.
func TestReloadTimeoutFlag(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "exporter.yml")
	if err := os.WriteFile(cfg, []byte("cameras: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second) // only ends a hung exporter
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "--config.file="+cfg, "--web.listen-address="+testutil.FreeAddr(t), "--config.reload-timeout=0s").CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("--config.reload-timeout=0s: %v, want exit code 1\n%s", err, out)
	}
	if want := "Invalid --config.reload-timeout: must be greater than 0"; !strings.Contains(string(out), want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
}
