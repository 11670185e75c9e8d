package config

import (
	"errors"
	"os"
	"path/filepath"
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
	sc := NewSafeConfig(reg, func(*Config) error { return applyErr })
	if err := sc.Reload(writeConfig(t, oneCamera)); err != nil {
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
		if err := sc.Reload(tc.path); err == nil {
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
	})
	path := writeConfig(t, oneCamera)
	var reloads sync.WaitGroup
	for range 2 {
		reloads.Go(func() {
			if err := sc.Reload(path); err != nil {
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
