package camera

import (
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/camera-exporter/camera_exporter/config"
)

// Manager runs one Stream per configured camera and applies reloads.
type Manager struct {
	newDecoder NewDecoder
	logger     *slog.Logger

	mu      sync.RWMutex
	streams map[string]*Stream
}

// NewManager returns a Manager without cameras; Apply adds them.
func NewManager(newDecoder NewDecoder, logger *slog.Logger) *Manager {
	return &Manager{newDecoder: newDecoder, logger: logger, streams: map[string]*Stream{}}
}

// Apply makes the running streams match cameras: unchanged cameras keep
// their session and counters, changed ones restart, removed ones stop.
func (m *Manager) Apply(cameras []config.Camera) {
	m.mu.Lock()
	defer m.mu.Unlock()
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

// Close stops every stream.
func (m *Manager) Close() {
	m.Apply(nil)
}
