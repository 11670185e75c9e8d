package analysis

import (
	"fmt"
	"log/slog"
	"sync"

	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/detector"
)

// LoadDetector loads the detector a configuration describes; main adapts
// detector/dnn's OpenCV one to it.
type LoadDetector func(cfg *config.Detector, logger *slog.Logger) (detector.Detector, error)

// CurrentDetector keeps the detector that the configuration in force
// describes. Loading a model, and waiting for the replaced detector's
// detections in flight, happen outside the lock that Detector takes, so
// that scrapes never wait for a model.
type CurrentDetector struct {
	load   LoadDetector
	logger *slog.Logger

	applyMu sync.Mutex       // serializes Apply; guards cfg
	cfg     *config.Detector // of the detector in force

	mu       sync.RWMutex      // guards detector
	detector detector.Detector // nil without one
}

// NewCurrentDetector returns a CurrentDetector without a detector; Apply
// adds one.
func NewCurrentDetector(load LoadDetector, logger *slog.Logger) *CurrentDetector {
	return &CurrentDetector{load: load, logger: logger}
}

// Apply puts cfg's detector in force, nil for none. A changed model is
// loaded first, so that one that fails to load changes nothing; an
// unchanged one is kept. The replaced detector is closed by closeReplaced,
// which waits for its detections in flight: a reload calls it once the
// cameras it stopped are gone.
func (d *CurrentDetector) Apply(cfg *config.Detector) (closeReplaced func(), err error) {
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	if d.cfg.Equal(cfg) {
		return func() {}, nil
	}
	var det detector.Detector
	if cfg != nil {
		if det, err = d.load(cfg, d.logger); err != nil {
			return nil, fmt.Errorf("loading detector: %w", err)
		}
		info := det.Info()
		d.logger.Info("Loaded detector", "model", info.Model, "layout", info.Layout,
			"input", fmt.Sprintf("%dx%d", info.InputWidth, info.InputHeight),
			"backend", info.Backend, "target", info.Target, "nets", cfg.Nets)
	}
	d.cfg = cfg
	d.mu.Lock()
	replaced := d.detector
	d.detector = det
	d.mu.Unlock()
	return func() {
		if replaced != nil {
			replaced.Close()
		}
	}, nil
}

// Detector returns the detector in force, nil if none is configured or d
// is nil.
func (d *CurrentDetector) Detector() detector.Detector {
	if d == nil {
		return nil
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.detector
}

// Close frees the detector in force.
func (d *CurrentDetector) Close() {
	closeReplaced, _ := d.Apply(nil) // removing the detector cannot fail
	closeReplaced()
}
