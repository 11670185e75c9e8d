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

// NewDetector loads the detector a configuration describes; main adapts
// detector/dnn's OpenCV one to it.
type NewDetector func(cfg *config.Detector, logger *slog.Logger) (detector.Detector, error)

// Manager runs what the configuration describes: one Stream per camera,
// and the detector their frames go through. It applies reloads without
// blocking scrapes: models load and streams stop outside the lock that
// Streams and Detector take.
type Manager struct {
	decoders      *DecoderPool
	newDetector   NewDetector
	logger        *slog.Logger
	snapshotWidth int // of the pictures analyses keep for the operator pages; 0: none

	applyMu     sync.Mutex       // serializes Apply; guards detectorCfg
	detectorCfg *config.Detector // of the detector in force

	mu       sync.RWMutex // guards the fields below
	streams  map[string]*Stream
	detector detector.Detector // nil without one
}

// NewManager returns a Manager without cameras or detector; Apply adds them.
func NewManager(newDecoder NewDecoder, newDetector NewDetector, logger *slog.Logger) *Manager {
	return &Manager{decoders: NewDecoderPool(newDecoder), newDetector: newDetector, logger: logger, streams: map[string]*Stream{}}
}

// KeepSnapshots makes the analyses of the streams started after it return
// their picture at most width pixels wide and tall (Frame.Snapshot), for
// the operator pages. Call it before the first Apply.
func (m *Manager) KeepSnapshots(width int) { m.snapshotWidth = width }

// Apply puts cfg in force. A changed detector is loaded first, so that a
// model that fails to load changes nothing; an unchanged one is kept.
// Unchanged cameras keep their session and counters, changed ones restart,
// removed ones stop. Only the swap holds the lock scrapes need: loading a
// model and stopping streams (which waits for their analyses in flight)
// happen outside it.
func (m *Manager) Apply(cfg *config.Config) error {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	det, changed, err := m.loadDetector(cfg.Detector)
	if err != nil {
		return err
	}

	m.mu.Lock()
	next := make(map[string]*Stream, len(cfg.Cameras))
	for _, c := range cfg.Cameras {
		if old, ok := m.streams[c.Name]; ok && old.Config().Equal(c) {
			next[c.Name] = old
			delete(m.streams, c.Name)
			continue
		}
		next[c.Name] = newStream(c, m.decoders, m.logger, streamOptions{snapshotWidth: m.snapshotWidth}) // starts a goroutine, no more
	}
	removed := m.streams // what is left over was removed or replaced
	m.streams = next
	replaced := m.detector
	if changed {
		m.detector, m.detectorCfg = det, cfg.Detector
	}
	m.mu.Unlock()

	stopAll(removed)
	if changed && replaced != nil {
		replaced.Close() // waits for the detections in flight
	}
	return nil
}

// loadDetector loads cfg's detector if it differs from the one in force,
// and reports whether it did. Needs applyMu.
func (m *Manager) loadDetector(cfg *config.Detector) (det detector.Detector, changed bool, err error) {
	if m.detectorCfg.Equal(cfg) {
		return nil, false, nil
	}
	if cfg == nil {
		return nil, true, nil
	}
	if det, err = m.newDetector(cfg, m.logger); err != nil {
		return nil, false, fmt.Errorf("loading detector: %w", err)
	}
	info := det.Info()
	m.logger.Info("Loaded detector", "model", info.Model, "layout", info.Layout,
		"input", fmt.Sprintf("%dx%d", info.InputWidth, info.InputHeight),
		"backend", info.Backend, "target", info.Target, "nets", cfg.Nets)
	return det, true, nil
}

// stopAll stops streams at the same time: each waits for its TEARDOWN to
// be sent, or to time out on a camera that stopped answering.
func stopAll(streams map[string]*Stream) {
	var wg sync.WaitGroup
	for _, s := range streams {
		wg.Go(s.Stop)
	}
	wg.Wait()
}

// Open starts a stream outside the configuration, as /probe does, with the
// configured cameras' decoders; the caller stops it, before Close.
// allowDial vets every host:port the session connects to, redirects
// included: an error ends the attempt, without connecting.
func (m *Manager) Open(cfg config.Camera, allowDial func(addr string) error) *Stream {
	return newStream(cfg, m.decoders, m.logger, streamOptions{allowDial: allowDial, snapshotWidth: m.snapshotWidth})
}

// Stream returns the configured camera's running stream, or nil.
func (m *Manager) Stream(name string) *Stream {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.streams[name]
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

// Close stops every stream, ending each session with a TEARDOWN, and frees
// the detector and the pooled decoders.
func (m *Manager) Close() {
	m.Apply(&config.Config{}) //nolint:errcheck // removing the detector cannot fail
	m.decoders.Close()
}
