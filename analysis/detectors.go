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

// Detectors keeps the detector that the configuration in force describes.
// Loading a model, and waiting for the replaced detector's detections in
// flight, happen outside the lock that Detector takes, so that scrapes
// never wait for a model.
type Detectors struct {
	load   LoadDetector
	logger *slog.Logger

	applyMu sync.Mutex       // serializes Apply; guards cfg
	cfg     *config.Detector // of the detector in force

	mu       sync.RWMutex      // guards detector
	detector detector.Detector // nil without one
}

// NewDetectors returns Detectors without a detector; Apply adds one.
func NewDetectors(load LoadDetector, logger *slog.Logger) *Detectors {
	return &Detectors{load: load, logger: logger}
}

// Apply puts cfg's detector in force, nil for none. A changed model is
// loaded first, so that one that fails to load changes nothing; an
// unchanged one is kept.
func (d *Detectors) Apply(cfg *config.Detector) error {
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	if d.cfg.Equal(cfg) {
		return nil
	}
	var det detector.Detector
	if cfg != nil {
		var err error
		if det, err = d.load(cfg, d.logger); err != nil {
			return fmt.Errorf("loading detector: %w", err)
		}
		info := det.Info()
		d.logger.Info("Loaded detector", "model", info.Model, "layout", info.Layout,
			"input", fmt.Sprintf("%dx%d", info.InputWidth, info.InputHeight),
			"backend", info.Backend, "target", info.Target, "nets", cfg.Nets)
	}
	d.mu.Lock()
	replaced := d.detector
	d.detector, d.cfg = det, cfg
	d.mu.Unlock()
	if replaced != nil {
		replaced.Close() // waits for the detections in flight
	}
	return nil
}

// Detector returns the detector in force, or nil if none is configured.
func (d *Detectors) Detector() detector.Detector {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.detector
}

// Close frees the detector in force.
func (d *Detectors) Close() {
	d.Apply(nil) //nolint:errcheck // removing the detector cannot fail
}
