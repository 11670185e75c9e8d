package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
)

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
		return strings.Replace(testutil.DetectorBlock(t, ""), mustAbs(t, cocoModel)+"/coco.names", path, 1)
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
