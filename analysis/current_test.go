package analysis_test

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/camera-exporter/camera_exporter/analysis"
	"github.com/camera-exporter/camera_exporter/analysis/analysistest"
	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/detector"
)

// detectorConfig is a configuration's detector block naming a model of
// size, which the tests' loaders never read.
func detectorConfig(t *testing.T, size int) *config.Detector {
	t.Helper()
	dir := t.TempDir()
	model, labels := filepath.Join(dir, "stub.pb"), filepath.Join(dir, "stub.names")
	for path, content := range map[string]string{model: "not loaded", labels: "person\n"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Parse(fmt.Appendf(nil, "detector:\n  model: %s\n  labels: %s\n  input_size: %d\n", model, labels, size))
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Detector
}

// TestCurrentDetectorLoadsWithoutBlockingScrapes loads a model that takes long:
// what scrapes ask must not wait for it, and it is in force once loaded.
func TestCurrentDetectorLoadsWithoutBlockingScrapes(t *testing.T) {
	loading, gate := make(chan struct{}), make(chan struct{})
	release := sync.OnceFunc(func() { close(gate) })
	t.Cleanup(release)
	slowLoad := func(*config.Detector, *slog.Logger) (detector.Detector, error) {
		close(loading)
		<-gate
		return &analysistest.Detector{}, nil
	}
	d := analysis.NewCurrentDetector(slowLoad, slog.New(slog.DiscardHandler))
	t.Cleanup(d.Close)
	// Made here: t.Fatal must not end the goroutine below, whose Apply
	// the test waits for.
	cfg := detectorConfig(t, 32)
	applied := make(chan error)
	go func() {
		_, err := d.Apply(cfg)
		applied <- err
	}()
	<-loading
	read := make(chan detector.Detector)
	go func() { read <- d.Detector() }()
	select {
	case det := <-read:
		if det != nil {
			t.Error("the detector being loaded is in force already")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reading the detector in force blocked during a model load")
	}
	release()
	if err := <-applied; err != nil {
		t.Fatal(err)
	}
	if d.Detector() == nil {
		t.Error("the loaded detector is not in force")
	}
}

// TestCurrentDetectorKeepsTheLastGoodModel checks that a model that fails to
// load changes nothing, that an unchanged configuration loads nothing, and
// that a replaced detector is closed.
func TestCurrentDetectorKeepsTheLastGoodModel(t *testing.T) {
	var loads int
	var loaded []*closingDetector
	load := func(cfg *config.Detector, _ *slog.Logger) (detector.Detector, error) {
		loads++
		if cfg.InputSize == 64 {
			return nil, errors.New("truncated model")
		}
		det := &closingDetector{}
		loaded = append(loaded, det)
		return det, nil
	}
	d := analysis.NewCurrentDetector(load, slog.New(slog.DiscardHandler))
	good, bad, other := detectorConfig(t, 32), detectorConfig(t, 64), detectorConfig(t, 96)
	apply := func(cfg *config.Detector) error {
		closeReplaced, err := d.Apply(cfg)
		if err == nil {
			closeReplaced()
		}
		return err
	}
	if err := apply(good); err != nil {
		t.Fatal(err)
	}
	first := d.Detector()
	if err := apply(good); err != nil || loads != 1 || d.Detector() != first {
		t.Errorf("the same configuration again: err %v, %d loads, detector changed %v; want none loaded", err, loads, d.Detector() != first)
	}
	if err := apply(bad); err == nil || d.Detector() != first {
		t.Errorf("a model that fails to load: err %v, detector changed %v; want an error and the last good one kept", err, d.Detector() != first)
	}
	if err := apply(other); err != nil || d.Detector() == first || !loaded[0].closed {
		t.Errorf("another model: err %v, replaced %v, old one closed %v", err, d.Detector() != first, loaded[0].closed)
	}
	d.Close()
	if d.Detector() != nil || !loaded[1].closed {
		t.Errorf("after Close: detector %v, closed %v; want none in force, closed", d.Detector(), loaded[1].closed)
	}
}

// closingDetector records that it was closed.
type closingDetector struct {
	analysistest.Detector
	closed bool
}

func (d *closingDetector) Close() { d.closed = true }
