package config

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "exporter.yml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const oneCamera = "cameras:\n  - name: gate\n    url: rtsp://10.0.0.5/stream\n"

func TestSafeConfigKeepsLastGoodConfig(t *testing.T) {
	reg := prometheus.NewRegistry()
	refuse := errors.New("model does not load")
	var applyErr error
	sc := NewSafeConfig(reg, func(*Config) error { return applyErr }, time.Minute)
	if err := sc.Reload(t.Context(), writeConfig(t, oneCamera)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		path     string
		applyErr error
	}{
		{"invalid file", writeConfig(t, "cameras:\n  - name: gate\n    url: http://nope\n"), nil},
		{"apply fails", writeConfig(t, "cameras: []\n"), refuse},
	} {
		applyErr = tc.applyErr
		if err := sc.Reload(t.Context(), tc.path); err == nil {
			t.Errorf("%s: reload succeeded", tc.name)
		}
		if got := sc.Get().Cameras; len(got) != 1 || got[0].Name != "gate" {
			t.Errorf("%s: configuration in force = %v, want the last good one", tc.name, got)
		}
		if v := testutil.ToFloat64(sc.status); v != 0 {
			t.Errorf("%s: camera_exporter_config_last_reload_successful = %v, want 0", tc.name, v)
		}
	}
}

// TestSafeConfigGetDuringReload applies a configuration that takes long,
// as one whose model loads slowly: Get, which /config and scrapes use, must
// not wait for it, and reloads must not overlap.
func TestSafeConfigGetDuringReload(t *testing.T) {
	applying, gate := make(chan struct{}, 2), make(chan struct{})
	release := sync.OnceFunc(func() { close(gate) })
	t.Cleanup(release)
	var running, overlaps atomic.Int32
	sc := NewSafeConfig(prometheus.NewRegistry(), func(*Config) error {
		if running.Add(1) > 1 {
			overlaps.Add(1)
		}
		defer running.Add(-1)
		applying <- struct{}{}
		<-gate
		return nil
	}, time.Minute)
	path := writeConfig(t, oneCamera)
	var reloads sync.WaitGroup
	for range 2 {
		reloads.Go(func() {
			if err := sc.Reload(t.Context(), path); err != nil {
				t.Error(err)
			}
		})
	}
	<-applying
	got := make(chan *Config)
	go func() { got <- sc.Get() }()
	select {
	case c := <-got:
		if len(c.Cameras) != 0 {
			t.Error("the configuration being applied is in force already")
		}
	case <-time.After(10 * time.Second): // only ends a deadlocked test
		release()
		t.Fatal("Get blocked during a reload")
	}
	release()
	reloads.Wait()
	if n := overlaps.Load(); n != 0 {
		t.Errorf("%d reloads applied while another was applying", n)
	}
	if len(sc.Get().Cameras) != 1 {
		t.Error("the reloaded configuration is not in force")
	}
}

// TestSafeConfigReloadRefusesBadFiles reloads configurations that name a
// file that would block the reload or fill the memory: each reload fails
// at once, the last good configuration stays in force, and a good one
// reloads after.
func TestSafeConfigReloadRefusesBadFiles(t *testing.T) {
	sc := NewSafeConfig(prometheus.NewRegistry(), func(*Config) error { return nil }, time.Minute)
	if err := sc.Reload(t.Context(), writeConfig(t, oneCamera)); err != nil {
		t.Fatal(err)
	}
	labels, err := filepath.Abs("testdata/models/tiny.names")
	if err != nil {
		t.Fatal(err)
	}
	passFile, err := filepath.Abs("testdata/gate-north.pass")
	if err != nil {
		t.Fatal(err)
	}
	bad := badFiles(t, labelsFile)
	for _, tc := range []struct {
		name, field, path string
		line              int
	}{
		{"labels /dev/zero", "labels", bad["dev_zero"].Path, 4},
		{"labels FIFO", "labels", bad["fifo"].Path, 4},
		{"labels directory", "labels", bad["directory"].Path, 4},
		{"labels too large", "labels", bad["oversize"].Path, 4},
		{"password_file FIFO", "password_file", bad["fifo"].Path, 10},
	} {
		values := map[string]string{"labels": labels, "password_file": passFile}
		values[tc.field] = tc.path
		path := writeConfig(t, expand(`detector:
  model: `+filepath.Join(filepath.Dir(labels), "tiny.weights")+`
  config: `+filepath.Join(filepath.Dir(labels), "tiny.cfg")+`
  labels: {{labels}}
  input_size: 320
cameras:
  - name: yard
    url: rtsp://10.0.0.6/stream
    username: viewer
    password_file: {{password_file}}
`, values))
		reloaded := make(chan error, 1)
		go func() { reloaded <- sc.Reload(t.Context(), path) }()
		select {
		case err := <-reloaded:
			if err == nil || !strings.HasPrefix(err.Error(), fmt.Sprintf("%s:%d: ", path, tc.line)) || !strings.Contains(err.Error(), tc.field+": "+tc.path+": ") {
				t.Errorf("%s: reload error %v, want one naming %s:%d, %s and %s", tc.name, err, path, tc.line, tc.field, tc.path)
			}
		case <-time.After(10 * time.Second): // only ends a blocked reload
			t.Fatalf("%s: reload still blocked after 10s", tc.name)
		}
		if got := sc.Get().Cameras; len(got) != 1 || got[0].Name != "gate" {
			t.Errorf("%s: configuration in force = %v, want the last good one", tc.name, got)
		}
		if v := testutil.ToFloat64(sc.status); v != 0 {
			t.Errorf("%s: camera_exporter_config_last_reload_successful = %v, want 0", tc.name, v)
		}
	}
	if err := sc.Reload(t.Context(), writeConfig(t, oneCamera+"  - name: yard\n    url: rtsp://10.0.0.6/stream\n")); err != nil {
		t.Fatal(err)
	}
	if got := sc.Get().Cameras; len(got) != 2 {
		t.Errorf("after a good reload, %d cameras in force, want 2", len(got))
	}
	if v := testutil.ToFloat64(sc.status); v != 1 {
		t.Errorf("after a good reload, camera_exporter_config_last_reload_successful = %v, want 1", v)
	}
}

// TestSafeConfigReloadTimeout reloads a file whose loading blocks reading a
// labels file, as on a hung file system: the reload fails at the load
// timeout naming that file, with the last good configuration in force;
// later reloads fail at once without starting another load, so that
// SIGHUPs from a configuration-management loop leave one blocked goroutine;
// once the blocked load returns, a reload works, and what the blocked load
// returned is never applied.
func TestSafeConfigReloadTimeout(t *testing.T) {
	var applied []string // the first camera of each configuration applied
	sc := NewSafeConfig(prometheus.NewRegistry(), func(c *Config) error {
		applied = append(applied, c.Cameras[0].Name)
		return nil
	}, 100*time.Millisecond)
	stuck := writeConfig(t, "cameras:\n  - name: late\n    url: rtsp://10.0.0.9/stream\n")
	const labels = "/mnt/x/coco.names"
	var loads atomic.Int32
	block, returned := make(chan struct{}), make(chan struct{})
	sc.load = func(path string, progress *loadProgress) (*Config, error) {
		loads.Add(1)
		if path == stuck {
			defer close(returned)
			done := progress.reading(labelsFile.What, labels)
			<-block
			done()
		}
		return load(path, progress)
	}
	good := writeConfig(t, oneCamera)
	if err := sc.Reload(t.Context(), good); err != nil {
		t.Fatal(err)
	}

	err := sc.Reload(t.Context(), stuck)
	if want := stuck + ": loading took longer than 100ms (--config.reload-timeout), gave up; it is still reading a labels file " + labels; err == nil || err.Error() != want {
		t.Errorf("reload of a blocked load: %v, want %q", err, want)
	}
	if v := testutil.ToFloat64(sc.status); v != 0 {
		t.Errorf("camera_exporter_config_last_reload_successful = %v, want 0", v)
	}

	const reloads = 5
	for i := range reloads {
		err := sc.Reload(t.Context(), good)
		if want := "the configuration load started at "; err == nil || !strings.HasPrefix(err.Error(), good+": not loaded: "+want) ||
			!strings.HasSuffix(err.Error(), " is still blocked reading a labels file "+labels) {
			t.Errorf("reload %d while a load is blocked: %v, want %q...%q", i, err, want, "is still blocked reading a labels file "+labels)
		}
	}
	if n := loads.Load(); n != 2 {
		t.Errorf("%d loads started, want 2: the good one and the blocked one, none while it is blocked", n)
	}
	if v := testutil.ToFloat64(sc.status); v != 0 {
		t.Errorf("camera_exporter_config_last_reload_successful = %v, want 0", v)
	}
	if got := sc.Get().Cameras; len(got) != 1 || got[0].Name != "gate" {
		t.Errorf("configuration in force = %v, want the last good one", got)
	}

	close(block)
	<-returned
	// The load returned; its goroutine ends a moment later, and until
	// then reloads still fail, loading nothing.
	err = sc.Reload(t.Context(), good)
	for deadline := time.Now().Add(10 * time.Second); err != nil && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
		err = sc.Reload(t.Context(), good)
	}
	if err != nil {
		t.Errorf("reload once the blocked load returned: %v", err)
	}
	if v := testutil.ToFloat64(sc.status); v != 1 {
		t.Errorf("camera_exporter_config_last_reload_successful = %v, want 1", v)
	}
	if want := []string{"gate", "gate"}; !slices.Equal(applied, want) {
		t.Errorf("configurations applied: %v, want %v, the blocked load's never", applied, want)
	}
}

// TestSafeConfigReloadCanceled ends the context of reloads, as a shutdown
// does, before and during a blocked load: each returns the context's
// cause at once, and camera_exporter_config_last_reload_successful keeps
// the outcome of the last reload that ran, since the file did not fail.
func TestSafeConfigReloadCanceled(t *testing.T) {
	sc := NewSafeConfig(prometheus.NewRegistry(), func(*Config) error { return nil }, time.Minute)
	block, loading := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(block) })
	var loads atomic.Int32
	sc.load = func(path string, progress *loadProgress) (*Config, error) {
		if loads.Add(1) > 1 {
			close(loading)
			<-block
		}
		return load(path, progress)
	}
	good := writeConfig(t, oneCamera)
	if err := sc.Reload(t.Context(), good); err != nil {
		t.Fatal(err)
	}
	stopping := errors.New("shutting down")

	ctx, cancel := context.WithCancelCause(t.Context())
	cancel(stopping)
	if err := sc.Reload(ctx, good); !errors.Is(err, stopping) {
		t.Errorf("reload with its context ended: %v, want %v", err, stopping)
	}
	if n := loads.Load(); n != 1 {
		t.Errorf("a reload whose context had ended started a load")
	}
	if v := testutil.ToFloat64(sc.status); v != 1 {
		t.Errorf("after a reload with its context ended, camera_exporter_config_last_reload_successful = %v, want 1", v)
	}

	ctx, cancel = context.WithCancelCause(t.Context())
	go func() {
		<-loading
		cancel(stopping)
	}()
	if err := sc.Reload(ctx, good); !errors.Is(err, stopping) {
		t.Errorf("reload whose context ends during the load: %v, want %v", err, stopping)
	}
	if v := testutil.ToFloat64(sc.status); v != 1 {
		t.Errorf("after a reload whose context ended during the load, camera_exporter_config_last_reload_successful = %v, want 1", v)
	}
	if got := sc.Get().Cameras; len(got) != 1 || got[0].Name != "gate" {
		t.Errorf("configuration in force = %v, want the last good one", got)
	}
}
