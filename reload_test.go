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
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
