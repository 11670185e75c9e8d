package camera

import (
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/camera-exporter/camera_exporter/config"
)

// Manager runs the cameras the configuration describes, one Stream each.
// It applies reloads without blocking scrapes: streams stop outside the
// lock that Streams takes.
type Manager struct {
	decoders      *DecoderPool
	logger        *slog.Logger
	snapshotWidth int // of the pictures analyses keep for the operator pages; 0: none

	applyMu sync.Mutex // serializes Apply

	mu      sync.RWMutex // guards streams
	streams map[string]*Stream
}

// NewManager returns a Manager without cameras; Apply adds them.
func NewManager(newDecoder NewDecoder, logger *slog.Logger) *Manager {
	return &Manager{decoders: NewDecoderPool(newDecoder), logger: logger, streams: map[string]*Stream{}}
}

// KeepSnapshots makes the analyses of the streams started after it return
// their picture at most width pixels wide and tall (Frame.Snapshot), for
// the operator pages. Call it before the first Apply.
func (m *Manager) KeepSnapshots(width int) { m.snapshotWidth = width }

// Apply puts cfg's cameras in force. Unchanged cameras keep their session
// and counters, changed ones restart, removed ones stop. Only the swap
// holds the lock scrapes need: stopping streams, which waits for their
// analyses in flight, happens outside it.
func (m *Manager) Apply(cfg *config.Config) {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
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
	m.mu.Unlock()
	stopAll(removed)
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

// Close stops every stream, ending each session with a TEARDOWN, and frees
// the pooled decoders.
func (m *Manager) Close() {
	m.Apply(&config.Config{})
	m.decoders.Close()
}
