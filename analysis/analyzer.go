// Package analysis owns what the exporter learns from each camera's
// pictures. It decides when pictures are analyzed: the rounds that scrapes
// prepare, analyses shared by scrapes closer together than the min
// interval, each camera's deadline. It runs the detector, and keeps per
// camera the detection counters, the drift, frozen-picture and view state,
// the reference calibration and its saving, and the history the pages
// show. Readers, the collectors, the pages and the probes, get typed copies
// that they share and read without holding a lock of this package.
package analysis

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/detector"
	"github.com/camera-exporter/camera_exporter/imagestats"
	"github.com/camera-exporter/camera_exporter/video"
)

// Camera is one running camera as the analyses see it: its settings, its
// session's state, and an analysis of its latest picture. *camera.Stream
// implements it; tests use fakes.
type Camera interface {
	Name() string
	Config() config.Camera
	// Up reports whether a frame arrived within the camera's timeout.
	Up(now time.Time) bool
	Status() camera.Status
	// Analyze decodes and measures the latest picture and, with a size
	// function, converts it for the detector. It may block for as long as
	// decoding takes.
	Analyze(size func(srcW, srcH int) (width, height int)) (camera.Frame, error)
}

// Cameras lists the running cameras and the detector their frames go
// through.
type Cameras interface {
	// Cameras returns the running cameras sorted by name.
	Cameras() []Camera
	// Detector returns nil when no detector is configured.
	Detector() detector.Detector
}

// ManagerCameras adapts the cameras a camera.Manager runs, and the
// detector in force in current, to Cameras.
func ManagerCameras(m *camera.Manager, current *CurrentDetector) Cameras {
	return managerCameras{manager: m, current: current}
}

type managerCameras struct {
	manager *camera.Manager
	current *CurrentDetector
}

func (m managerCameras) Detector() detector.Detector { return m.current.Detector() }

func (m managerCameras) Cameras() []Camera {
	streams := m.manager.Streams()
	cameras := make([]Camera, len(streams))
	for i, s := range streams {
		cameras[i] = s
	}
	return cameras
}

// Options say what an Analyzer does with the cameras' pictures.
type Options struct {
	// Detect runs the pictures of the cameras that detect through the
	// detector; without it no inference runs.
	Detect bool
	// Drift follows each camera's distinct pictures: drift against its
	// reference, frozen pictures, view, and the reference's calibration.
	Drift bool
	// MinInterval: scrapes closer together than this, as an HA pair's,
	// share one analysis per camera.
	MinInterval time.Duration
	// Slots bounds the pictures decoded and analyzed at once. The
	// Analyzers of probed cameras share /metrics' slots, so that their
	// analyses take turns with its.
	Slots chan struct{}
}

// Analyzer analyzes the pictures of a set of cameras for the scrapes that
// ask, and keeps what each camera's analyses found. Analyses run in the
// bounded pool of Options.Slots and may outlive the scrape that started
// them: a camera that is slower than its timeout is left out of that
// scrape, and the next one picks up the finished result.
//
// A hundred cameras with detection take seconds of CPU to analyze, which a
// scrape would wait for. So once the scrapes' interval is known, each
// scrape also prepares the next: half an interval later (at least
// MinInterval), it starts the next round of analyses, which the next scrape
// reports instead of starting its own. The work is the same, done between
// scrapes, and no round starts without a scrape to ask for it.
type Analyzer struct {
	cameras Cameras
	opts    Options
	logger  *slog.Logger

	mu     sync.Mutex // guards the fields below; held for bookkeeping only, never across an analysis
	states map[Camera]*cameraState
	// lastScrape began the latest scrape at least MinInterval after the
	// one before, interval after it: the scrapes' interval, 0 until known.
	lastScrape time.Time
	interval   time.Duration
	prepare    *time.Timer // starts the round for the next scrape
}

// New returns an Analyzer of cameras.
func New(cameras Cameras, opts Options, logger *slog.Logger) *Analyzer {
	return &Analyzer{cameras: cameras, opts: opts, logger: logger, states: map[Camera]*cameraState{}}
}

// ForCameras returns an Analyzer of other cameras, a probe's, with a's
// options and slots, and its own state.
func (a *Analyzer) ForCameras(cameras Cameras, logger *slog.Logger) *Analyzer {
	return New(cameras, a.opts, logger)
}

// cameraState is what the Analyzer keeps of a camera between scrapes.
type cameraState struct {
	attempt    *attempt    // the latest analysis, or the one in flight
	detections *detections // nil when the camera does not detect
	events     *events
	drift      *driftState // nil without Options.Drift
	look       *lookState
}

// attempt is one analysis of a camera's latest picture.
type attempt struct {
	reported atomic.Bool   // a scrape reported its values
	start    time.Time     // when the scrape that started it, or the round for the next one, began
	done     chan struct{} // closed once outcome is set
	outcome  Analysis
}

// Analysis is the outcome of one analysis of a camera's picture, shared by
// the scrapes that report it once it finished: not to be modified.
type Analysis struct {
	// Err tells why the picture could not be decoded or measured;
	// video.ErrNoPicture while there is no picture yet, which is no
	// failure.
	Err   error
	Stats imagestats.Stats
	// Found is what the detector found of the counted classes; nil when
	// the camera does not detect, or detection failed with DetectErr.
	Found     *Found
	DetectErr error
}

// Succeeded reports whether the picture was analyzed and, if the camera
// detects, run through the detector: camera_frame_analysis_success.
func (a *Analysis) Succeeded() bool { return a != nil && a.Err == nil && a.DetectErr == nil }

// Round is what one scrape reads of the running cameras, sorted by name.
type Round struct {
	// Began is when the scrape began, which its values are of.
	Began   time.Time
	Cameras []Scraped
	// Detector is the detector the round's pictures went through; nil
	// without one or without Options.Detect.
	Detector detector.Detector
}

// Scraped is one camera's part of a scrape.
type Scraped struct {
	Name string
	// Up tells whether a frame had arrived within the camera's timeout
	// when the scrape began; a camera that is down is not analyzed.
	Up bool
	// Analysis is the outcome of the analysis the scrape reports: nil
	// when the camera is down or the analysis was still running at the
	// camera's deadline, then CutOff.
	Analysis *Analysis
	CutOff   bool
	// Detection holds the camera's detection counters; nil when it does
	// not detect.
	Detection *Detection
	// Drift is the camera's drift, frozen-picture and view state; nil
	// without Options.Drift.
	Drift *Drift
}

// detector returns the detector the analyses use, nil for none.
func (a *Analyzer) detector() detector.Detector {
	if !a.opts.Detect {
		return nil
	}
	return a.cameras.Detector()
}

// Scrape starts, or shares, the analysis of every camera that is up, and
// waits for each until the camera's timeout after the scrape began, or ctx
// ends. Deadlines count from the scrape's start, so slow cameras do not
// add up.
func (a *Analyzer) Scrape(ctx context.Context) Round {
	cameras := a.cameras.Cameras()
	det := a.detector()
	now := time.Now()
	a.scrapeBegins(now)
	defer a.prepareNext(now)
	jobs := make([]scrapeJob, len(cameras))
	for i, cam := range cameras {
		jobs[i] = a.begin(cam, det, now)
	}
	a.forgetRemoved(cameras)

	round := Round{Began: now, Detector: det, Cameras: make([]Scraped, len(jobs))}
	for i, job := range jobs {
		sc := Scraped{Name: job.camera.Name(), Up: job.attempt != nil}
		if at := job.attempt; at != nil {
			deadline, cancel := context.WithDeadline(ctx, now.Add(time.Duration(job.camera.Config().Timeout)))
			select {
			case <-at.done:
				sc.Analysis = &at.outcome
				if at.outcome.Err == nil {
					at.reported.Store(true)
				}
			case <-deadline.Done():
				sc.CutOff = true
				a.logger.Debug("Frame analysis still running at the scrape deadline", "camera", sc.Name)
				job.look.cutOff(time.Now(), at)
			}
			cancel()
		}
		if job.detections != nil {
			sc.Detection = job.detections.copy()
		}
		if job.drift != nil {
			sc.Drift = job.drift.copy()
		}
		round.Cameras[i] = sc
	}
	return round
}

// scrapeBegins learns the scrapes' interval, and cancels a round prepared
// for a scrape that came first: the scrape starts what it still needs.
// Scrapes within MinInterval of each other, an HA pair's, share analyses,
// and count as one.
func (a *Analyzer) scrapeBegins(now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.prepare != nil {
		a.prepare.Stop()
	}
	if since := now.Sub(a.lastScrape); a.lastScrape.IsZero() || since >= a.opts.MinInterval {
		if !a.lastScrape.IsZero() {
			a.interval = since
		}
		a.lastScrape = now
	}
}

// prepareNext starts the next scrape's analyses half an interval after
// this one began, and at least MinInterval after it, since analyses are
// shared within it; not when that is past the next scrape.
func (a *Analyzer) prepareNext(scrapeStart time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delay := max(a.interval/2, a.opts.MinInterval)
	if a.interval == 0 || delay >= a.interval || scrapeStart != a.lastScrape {
		return // no interval yet, or this scrape shared the one that prepares
	}
	a.prepare = time.AfterFunc(time.Until(scrapeStart.Add(delay)), func() {
		det := a.detector()
		now := time.Now()
		for _, cam := range a.cameras.Cameras() {
			a.begin(cam, det, now)
		}
	})
}

// scrapeJob is a camera's part of a scrape: what begin read of its state
// under the lock, and its analysis, nil when the camera is down.
type scrapeJob struct {
	camera     Camera
	attempt    *attempt
	detections *detections // nil when the camera does not detect
	drift      *driftState // nil without Options.Drift
	look       *lookState
}

// begin returns the camera's part of the scrape, with its analysis in
// flight, a finished one younger than MinInterval, or a newly started one
// when the camera is up. What it returns was read under the lock, since
// concurrent scrapes replace the camera's detections. A camera that
// detects has the frame run through its detections' detector, new
// detections being made when the detector changed.
func (a *Analyzer) begin(cam Camera, det detector.Detector, now time.Time) scrapeJob {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.state(cam)
	cfg := cam.Config()
	switch {
	case det == nil || !*cfg.Detect.Enabled:
		st.detections = nil
	case st.detections == nil || st.detections.detector != det:
		st.detections = newDetections(det, cfg.Detect.Classes)
	}
	job := scrapeJob{camera: cam, detections: st.detections, drift: st.drift, look: st.look}
	if cam.Up(now) {
		job.attempt = a.attempt(cam, st, now)
	}
	return job
}

// state returns the camera's state, made on first sight. Needs mu.
func (a *Analyzer) state(cam Camera) *cameraState {
	st := a.states[cam]
	if st == nil {
		logger := a.logger.With("camera", cam.Name())
		st = &cameraState{events: &events{logger: logger}, look: &lookState{}}
		if a.opts.Drift {
			st.drift = newDriftState(cam.Config(), logger)
		}
		a.states[cam] = st
	}
	return st
}

// attempt returns the camera's analysis to share, or starts one. Needs mu.
func (a *Analyzer) attempt(cam Camera, st *cameraState, now time.Time) *attempt {
	if at := st.attempt; at != nil {
		select {
		case <-at.done:
			// Failures are not shared: most mean no frame had arrived yet.
			// A good result is, within MinInterval, and until a scrape
			// reported it, if the scrapes came on time: one prepared for
			// the next scrape, or that missed its scrape's deadline, is
			// the next scrape's.
			age := now.Sub(at.start)
			if at.outcome.Succeeded() && (age < a.opts.MinInterval || !at.reported.Load() && age < a.interval*3/2) {
				return at
			}
		default:
			return at // still running: share it rather than queue a second one
		}
	}
	at := &attempt{done: make(chan struct{}), start: now}
	st.attempt = at
	counters, events, drifts, look := st.detections, st.events, st.drift, st.look
	go func() {
		a.opts.Slots <- struct{}{}
		defer func() {
			<-a.opts.Slots
			events.analyzed(&at.outcome)
			close(at.done)
		}()
		var size func(int, int) (int, int)
		if counters != nil {
			size = detector.ScaledSize(counters.detector)
		}
		frame, err := cam.Analyze(size)
		if err != nil {
			at.outcome.Err = err
			look.fail(time.Now(), at, err)
			return
		}
		at.outcome.Stats = frame.Stats
		if counters != nil {
			at.outcome.Found, at.outcome.DetectErr = counters.detect(cam.Config(), frame)
		}
		now := time.Now()
		if drifts != nil {
			drifts.observe(now, frame, at.outcome.Found)
		}
		look.observe(now, at, frame)
	}()
	return at
}

// forgetRemoved drops the state of cameras no longer running, which a
// reload stopped or replaced.
func (a *Analyzer) forgetRemoved(cameras []Camera) {
	running := make(map[Camera]bool, len(cameras))
	for _, cam := range cameras {
		running[cam] = true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for s := range a.states {
		if !running[s] {
			delete(a.states, s)
		}
	}
}

// noPicture reports whether err means that no picture arrived yet to
// analyze: no analysis was made, and none failed.
func noPicture(err error) bool { return errors.Is(err, video.ErrNoPicture) }

// Tally counts a round's analyses, to tell a collector that could not do
// its job from cameras that fail one by one.
type Tally struct {
	// Analyzed finished with a measured picture; Failed failed or were cut
	// off at the deadline. A camera up without a picture yet is neither.
	Analyzed, Failed int
	// Detected and Missed count the analyzed pictures of cameras that
	// detect whose detection succeeded, and failed.
	Detected, Missed int
}

// Tally counts the round's analyses.
func (r Round) Tally() Tally {
	var t Tally
	for _, sc := range r.Cameras {
		a := sc.Analysis
		switch {
		case sc.CutOff:
			t.Failed++
		case a == nil || noPicture(a.Err):
			// Down, or up without a picture yet: nothing to analyze, no failure.
		case a.Err != nil:
			t.Failed++
		default:
			t.Analyzed++
			if sc.Detection == nil {
				break
			}
			if a.DetectErr != nil {
				t.Missed++
			} else {
				t.Detected++
			}
		}
	}
	return t
}
