package probe

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/camera-exporter/camera_exporter/analysis"
	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/collector"
	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/detector"
)

var (
	errSessionLimit  = errors.New("probe session limit reached")
	errShuttingDown  = errors.New("shutting down")
	errCameraRemoved = errors.New("camera removed by a reload")
)

// sessions keeps the cameras that probes watch between probes: a camera's
// first probe opens its session, the probes after it, an HA pair's
// included, read it, and a session no probe read for idleTimeout ends
// with a TEARDOWN. Only the map and the counts are under the lock:
// sessions start and stop outside it.
type sessions struct {
	manager     *camera.Manager
	detector    *analysis.CurrentDetector
	metrics     *collector.CameraCollector // whose ForCameras each session's collectors come from
	max         int
	idleTimeout time.Duration
	logger      *slog.Logger

	mu       sync.Mutex
	byKey    map[string]*session
	opened   int  // sessions in byKey that probes opened, which max bounds
	shutdown bool // Close was called
	stopping sync.WaitGroup
	done     chan struct{} // closed by Close, ends the idle check

	closed *prometheus.CounterVec // sessions ended, by reason
	// readDir lists a module's reference directory; tests make it fail as
	// no directory fails for root.
	readDir func(string) ([]fs.DirEntry, error)
}

// session is one probed camera.
type session struct {
	stream *camera.Stream
	// requested is the camera the probes asked for, which a reload may
	// change; stream's may learn no reference, for the module's limit.
	requested config.Camera
	// learning is the reference file the session may save, which was
	// missing when it opened; empty if none.
	learning string
	// owned is a session opened for probes; a configured camera's stream
	// belongs to the manager.
	owned     bool
	collector *collector.CameraCollector // with this camera's own counters and drift state
	inUse     int                        // probes reading it; guarded by sessions.mu
	lastProbe time.Time                  // guarded by sessions.mu
}

func newSessions(manager *camera.Manager, detector *analysis.CurrentDetector, metrics *collector.CameraCollector, maxSessions int, idleTimeout time.Duration, logger *slog.Logger) *sessions {
	s := &sessions{
		manager:     manager,
		detector:    detector,
		metrics:     metrics,
		max:         maxSessions,
		idleTimeout: idleTimeout,
		logger:      logger,
		byKey:       map[string]*session{},
		done:        make(chan struct{}),
		readDir:     os.ReadDir,
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "camera_exporter_probe_sessions_closed_total",
			Help: "Camera sessions opened for probes that ended, by reason: idle (no probe within --probe.session-idle-timeout) or replaced (a reload changed the camera's module or credentials).",
		}, []string{"reason"}),
	}
	for _, reason := range []string{"idle", "replaced"} {
		s.closed.WithLabelValues(reason)
	}
	go s.closeIdle()
	return s
}

// acquire returns the session of cam, opening it if no probe did yet or if
// its settings changed; release must follow. key tells cameras apart,
// allowDial vets where an opened session connects, and referenceLimit
// bounds the references saved in cam's reference directory.
func (s *sessions) acquire(key string, cam config.Camera, configured bool, allowDial func(string) error, referenceLimit int) (*session, error) {
	var stream *camera.Stream
	if configured {
		if stream = s.manager.Stream(cam.Name); stream == nil {
			return nil, errCameraRemoved
		}
	}
	s.mu.Lock()
	sess, err := s.reuseLocked(key, cam, configured, stream)
	full := !configured && s.opened >= s.max
	s.mu.Unlock()
	if sess != nil || err != nil {
		return sess, err
	}
	if full { // before listing the reference directory, as each probe over the cap would
		return nil, errSessionLimit
	}
	// Read outside the lock, which probes of other cameras need.
	var saved map[string]bool
	var unlisted error // why the reference directory could not be listed
	learning := ""
	if !configured {
		learning, saved, unlisted = s.learnsReference(cam)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if sess, err := s.reuseLocked(key, cam, configured, stream); sess != nil || err != nil {
		return sess, err
	}
	requested := cam
	if !configured {
		if s.opened >= s.max {
			return nil, errSessionLimit
		}
		if unlisted != nil {
			s.logger.Warn("Not learning the probed camera's reference: its module's reference.dir cannot be listed, so its references cannot be counted against reference_file_limit",
				"camera", cam.Name, "err", unlisted)
			cam.Reference.Calibration = 0
		}
		if learning != "" && s.referencesLocked(filepath.Dir(learning), saved) >= referenceLimit {
			s.logger.Warn("Not learning the probed camera's reference: its module's reference.dir holds reference_file_limit references",
				"camera", cam.Name, "dir", filepath.Dir(learning), "reference_file_limit", referenceLimit)
			cam.Reference.Calibration, learning = 0, ""
		}
		stream = s.manager.Open(cam, allowDial) // starts a goroutine, no more
		s.opened++
	}
	cc := s.metrics.ForCameras(oneCamera{stream: stream, detector: s.detector}, s.logger)
	sess = &session{stream: stream, requested: requested, learning: learning, owned: !configured, collector: cc, inUse: 1}
	s.byKey[key] = sess
	return sess, nil
}

// reuseLocked returns the open session of key if it still watches cam,
// and drops it if a reload changed cam. Needs mu.
func (s *sessions) reuseLocked(key string, cam config.Camera, configured bool, stream *camera.Stream) (*session, error) {
	if s.shutdown {
		return nil, errShuttingDown
	}
	sess := s.byKey[key]
	switch {
	case sess == nil:
		return nil, nil
	case configured && sess.stream == stream || !configured && sess.requested.Equal(cam):
		sess.inUse++
		return sess, nil
	}
	s.removeLocked(key, sess, "replaced")
	return nil, nil
}

// learnsReference returns the reference file that a session of cam would
// learn and save, "" if none, and the probes' references saved in its
// directory. It fails when the directory cannot be listed: the references
// in it cannot be counted then, and one that can be written but not
// listed would let the probes fill the disk.
func (s *sessions) learnsReference(cam config.Camera) (string, map[string]bool, error) {
	file := cam.ReferenceFile()
	if file == "" || cam.Reference.Calibration <= 0 {
		return "", nil, nil
	}
	// A file that exists is loaded, not written, and one that cannot be
	// read is not learned again either.
	if _, err := os.Stat(file); !errors.Is(err, fs.ErrNotExist) {
		return "", nil, nil
	}
	entries, err := s.readDir(filepath.Dir(file))
	if err != nil {
		return "", nil, err
	}
	saved := map[string]bool{}
	for _, e := range entries {
		if e.Type().IsRegular() && config.IsProbeReference(e.Name()) {
			saved[e.Name()] = true
		}
	}
	return file, saved, nil
}

// referencesLocked counts the references of dir: those saved, and those
// that open sessions learn and have not saved yet. Needs mu.
func (s *sessions) referencesLocked(dir string, saved map[string]bool) int {
	n := len(saved)
	for _, sess := range s.byKey {
		if sess.learning != "" && filepath.Dir(sess.learning) == dir && !saved[filepath.Base(sess.learning)] {
			n++
		}
	}
	return n
}

// release ends a probe's use of sess.
func (s *sessions) release(sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess.inUse--
	sess.lastProbe = time.Now()
}

// count returns the sessions open for probes.
func (s *sessions) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opened
}

// removeLocked drops sess from the map and stops its stream, if it owns
// one, in the background: probes reading it get ErrStopped. Needs mu.
func (s *sessions) removeLocked(key string, sess *session, reason string) {
	delete(s.byKey, key)
	if !sess.owned {
		return
	}
	s.opened--
	s.closed.WithLabelValues(reason).Inc()
	s.stopLater(sess.stream)
}

// stopLater ends stream's session with a TEARDOWN, outside the lock. Needs mu.
func (s *sessions) stopLater(stream *camera.Stream) {
	s.stopping.Go(stream.Stop)
}

// closeIdle ends the sessions that no probe read for idleTimeout, checking
// a few times within it.
func (s *sessions) closeIdle() {
	tick := time.NewTicker(min(max(s.idleTimeout/4, 100*time.Millisecond), 30*time.Second))
	defer tick.Stop()
	for {
		select {
		case <-s.done:
			return
		case now := <-tick.C:
			s.mu.Lock()
			for key, sess := range s.byKey {
				if sess.inUse == 0 && now.Sub(sess.lastProbe) >= s.idleTimeout {
					if sess.owned {
						s.logger.Info("Closing probe session, not probed", "camera", sess.stream.Name(), "idle_timeout", s.idleTimeout)
					}
					s.removeLocked(key, sess, "idle")
				}
			}
			s.mu.Unlock()
		}
	}
}

// Close ends every session with a TEARDOWN, and waits for them; no
// session opens after it.
func (s *sessions) Close() {
	s.mu.Lock()
	if !s.shutdown {
		s.shutdown = true
		close(s.done)
		for key, sess := range s.byKey {
			delete(s.byKey, key)
			if sess.owned {
				s.opened--
				s.stopLater(sess.stream)
			}
		}
	}
	s.mu.Unlock()
	s.stopping.Wait()
}

// oneCamera is a probed camera as its analyses see it.
type oneCamera struct {
	stream   *camera.Stream
	detector *analysis.CurrentDetector
}

func (o oneCamera) Cameras() []analysis.Camera  { return []analysis.Camera{o.stream} }
func (o oneCamera) Detector() detector.Detector { return o.detector.Detector() }
