package camera

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/detector"
)

// NewDetector loads the detector a configuration describes; detector/dnn
// provides the OpenCV one.
type NewDetector func(cfg *config.Detector, logger *slog.Logger) (detector.Detector, error)

// Manager runs what the configuration describes: one Stream per camera,
// and the detector their frames go through. It applies reloads.
type Manager struct {
	newDecoder  NewDecoder
	newDetector NewDetector
	logger      *slog.Logger

	mu          sync.RWMutex
	streams     map[string]*Stream
	detector    detector.Detector // nil without one
	detectorCfg *config.Detector
}

// NewManager returns a Manager without cameras or detector; Apply adds them.
func NewManager(newDecoder NewDecoder, newDetector NewDetector, logger *slog.Logger) *Manager {
	return &Manager{newDecoder: newDecoder, newDetector: newDetector, logger: logger, streams: map[string]*Stream{}}
}

// Apply puts cfg in force. A changed detector is loaded first, so that a
// model that fails to load changes nothing; an unchanged one is kept.
// Unchanged cameras keep their session and counters, changed ones restart,
// removed ones stop.
func (m *Manager) Apply(cfg *config.Config) error {
	m.mu.Lock()
	old, err := m.applyDetector(cfg.Detector)
	if err != nil {
		m.mu.Unlock()
		return err
	}
	m.applyCameras(cfg.Cameras)
	m.mu.Unlock()
	// Outside the lock: Close waits for the detections in flight, and
	// scrapes must not wait for it.
	if old != nil {
		old.Close()
	}
	return nil
}

// applyDetector loads cfg's detector if it changed, and returns the one it
// replaces, to be closed. Needs mu.
func (m *Manager) applyDetector(cfg *config.Detector) (replaced detector.Detector, err error) {
	if m.detectorCfg.Equal(cfg) {
		return nil, nil
	}
	var det detector.Detector
	if cfg != nil {
		if det, err = m.newDetector(cfg, m.logger); err != nil {
			return nil, fmt.Errorf("loading detector: %w", err)
		}
		info := det.Info()
		m.logger.Info("Loaded detector", "model", info.Model, "layout", info.Layout,
			"input", fmt.Sprintf("%dx%d", info.InputWidth, info.InputHeight),
			"backend", info.Backend, "target", info.Target, "nets", cfg.Nets)
	}
	replaced = m.detector
	m.detector, m.detectorCfg = det, cfg
	return replaced, nil
}

// applyCameras makes the running streams match cameras. Needs mu.
func (m *Manager) applyCameras(cameras []config.Camera) {
	next := make(map[string]*Stream, len(cameras))
	for _, cfg := range cameras {
		if old, ok := m.streams[cfg.Name]; ok && old.Config().Equal(cfg) {
			next[cfg.Name] = old
			delete(m.streams, cfg.Name)
			continue
		}
		next[cfg.Name] = NewStream(cfg, m.newDecoder, m.logger)
	}
	// What is left over was removed or replaced.
	for _, old := range m.streams {
		old.Stop()
	}
	m.streams = next
}

// Streams returns the running streams sorted by camera name.
func (m *Manager) Streams() []*Stream {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]*Stream, 0, len(m.streams))
	for _, s := range m.streams {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *Stream) int { return strings.Compare(a.Name(), b.Name()) })
	return out
}

// Detector returns the detector in force, or nil if none is configured.
func (m *Manager) Detector() detector.Detector {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.detector
}

// Close stops every stream and frees the detector.
func (m *Manager) Close() {
	m.Apply(&config.Config{}) //nolint:errcheck // removing the detector cannot fail
}
