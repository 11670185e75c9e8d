package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/camera-exporter/camera_exporter/detector"
	"github.com/camera-exporter/camera_exporter/imagestats"
	"github.com/camera-exporter/camera_exporter/video"
)

var (
	imageWorkers = kingpin.Flag("collector.image.workers",
		"Frames decoded and analyzed at the same time, across all cameras.").
		Default(strconv.Itoa(runtime.NumCPU())).Int()
	imageMinInterval = kingpin.Flag("collector.image.min-interval",
		"Scrapes closer together than this share one analysis per camera (e.g. an HA Prometheus pair).").
		Default("5s").Duration()
)

func init() {
	registerCollector("image", true, newImageCollector)
}

// imageCollector decodes each camera's latest picture, reports image
// statistics and, with a detector configured, what the detector finds in
// that same picture. Analyses run in a bounded pool and may outlive the
// scrape that started them: a camera that is slower than its timeout is
// left out of that scrape, and the next one picks up the finished result.
//
// A hundred cameras with detection take seconds of CPU to analyze, which a
// scrape would wait for. So once the scrapes' interval is known, each
// scrape also prepares the next: half an interval later (at least
// minInterval), it starts the next round of analyses, which the next scrape
// reports instead of starting its own. The work is the same, done between
// scrapes, and no round starts without a scrape to ask for it.
type imageCollector struct {
	cameras     Cameras
	logger      *slog.Logger
	workers     chan struct{}
	minInterval time.Duration

	mu     sync.Mutex
	states map[Camera]*cameraState
	// lastScrape began the latest scrape at least minInterval after the
	// one before, interval after it: the scrapes' interval, 0 until known.
	lastScrape time.Time
	interval   time.Duration
	prepare    *time.Timer // starts the round for the next scrape

	brightness, contrast, darkRatio, success        *prometheus.Desc
	overexposed, sharpness, edgeDensity, saturation *prometheus.Desc
	channelMean                                     *prometheus.Desc
	detection                                       detectionDescs
	drift                                           driftDescs
}

// cameraState is what the collector keeps of a camera between scrapes.
type cameraState struct {
	analysis   *analysis   // the latest, or the one in flight
	detections *detections // nil when the camera does not detect
	events     *events
	drift      *driftState
	look       *lookState
}

// analysis is one camera's latest result, or the one being computed.
type analysis struct {
	reported atomic.Bool   // a scrape sent its values
	start    time.Time     // when the scrape that started it, or the round for the next one, began
	done     chan struct{} // closed when the fields below are set
	stats    imagestats.Stats
	err      error
	// found is what the detector found; nil when the camera does not
	// detect or detection failed, with detectErr.
	found     *found
	detectErr error
}

func newImageCollector(cameras Cameras, res *resources, logger *slog.Logger) (Collector, error) {
	shared := " Scrapes within --collector.image.min-interval of each other share one analysis."
	return &imageCollector{
		cameras:     cameras,
		logger:      logger,
		workers:     res.analysisSlots,
		minInterval: *imageMinInterval,
		states:      map[Camera]*cameraState{},
		brightness: cameraDesc("frame_brightness_ratio",
			"Mean luma of the camera's latest analyzed frame, 0 (black) to 1 (white) on the full-range scale."+shared),
		contrast: cameraDesc("frame_contrast_ratio",
			"Standard deviation of luma of the camera's latest analyzed frame, on the full-range 0 to 1 scale."+shared),
		darkRatio: cameraDesc("frame_dark_pixels_ratio",
			"Share of pixels of the camera's latest analyzed frame whose luma is below the camera's dark_threshold."+shared),
		success: cameraDesc("frame_analysis_success",
			"1 if the camera's latest frame was decoded, analyzed and, if the camera detects, run through the detector within the scrape's deadline, else 0."),
		overexposed: cameraDesc("frame_overexposed_pixels_ratio",
			"Share of pixels of the camera's latest analyzed frame that are near white (luma at or above 0.95): glare, a camera facing the sun."+shared),
		sharpness: cameraDesc("frame_sharpness",
			"Variance of the Laplacian of luma (0 to 1 scale) of the camera's latest analyzed frame at 320 pixels wide: a defocused, dirty or fogged lens lowers it."+shared),
		edgeDensity: cameraDesc("frame_edge_density_ratio",
			"Share of edge pixels of the camera's latest analyzed frame at 320 pixels wide: a covered lens or a blocked view lowers it."+shared),
		saturation: cameraDesc("frame_saturation_ratio",
			"Mean colour saturation of the camera's latest analyzed frame: 0 for gray pictures, as in infrared night mode, 1 for pure colours."+shared),
		channelMean: cameraDesc("frame_channel_mean_ratio",
			"Mean of a colour channel of the camera's latest analyzed frame, 0 to 1: a colour cast sets one apart."+shared, "channel"),
		detection: newDetectionDescs(),
		drift:     newDriftDescs(),
	}, nil
}

// Update fails when it could not do its job at all: cameras are up but
// none could be analyzed within the deadline (a frame that is not
// decodable yet aside), or the detector failed on every camera it ran on.
// A single camera's failure is camera_frame_analysis_success 0.
func (c *imageCollector) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	cameras := c.cameras.Cameras()
	det := c.cameras.Detector()
	if det != nil {
		ch <- c.detection.infoMetric(det)
	}
	now := time.Now()
	c.scrapeBegins(now)
	defer c.prepareNext(now)
	jobs := make([]analysisJob, len(cameras))
	for i, cam := range cameras {
		jobs[i] = c.begin(cam, det, now)
	}
	c.forgetRemoved(cameras)

	var outcome scrapeOutcome
	for _, job := range jobs {
		cam, a := job.camera, job.analysis
		if a != nil {
			// Deadlines count from the scrape's start, so slow cameras do not add up.
			deadline, cancel := context.WithDeadline(ctx, now.Add(time.Duration(cam.Config().Timeout)))
			select {
			case <-a.done:
			case <-deadline.Done():
			}
			cancel()
			outcome.add(a, job.detections != nil)
		}
		f := c.send(ch, cam.Name(), a, job.look)
		if job.detections != nil {
			job.detections.collect(ch, c.detection, cam.Name(), f)
		}
		job.drift.collect(ch, c.drift, cam.Name(), now)
	}
	return outcome.err()
}

// scrapeBegins learns the scrapes' interval, and cancels a round prepared
// for a scrape that came first: the scrape starts what it still needs.
// Scrapes within minInterval of each other, an HA pair's, share analyses,
// and count as one.
func (c *imageCollector) scrapeBegins(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.prepare != nil {
		c.prepare.Stop()
	}
	if since := now.Sub(c.lastScrape); c.lastScrape.IsZero() || since >= c.minInterval {
		if !c.lastScrape.IsZero() {
			c.interval = since
		}
		c.lastScrape = now
	}
}

// prepareNext starts the next scrape's analyses half an interval after
// this one began, and at least minInterval after it, since analyses are
// shared within it; not when that is past the next scrape.
func (c *imageCollector) prepareNext(scrapeStart time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delay := max(c.interval/2, c.minInterval)
	if c.interval == 0 || delay >= c.interval || scrapeStart != c.lastScrape {
		return // no interval yet, or this scrape shared the one that prepares
	}
	c.prepare = time.AfterFunc(time.Until(scrapeStart.Add(delay)), func() {
		det := c.cameras.Detector()
		now := time.Now()
		for _, cam := range c.cameras.Cameras() {
			c.begin(cam, det, now)
		}
	})
}

// analysisJob is a camera's part of a scrape: what begin read of its state
// under the lock, and its analysis, nil when the camera is down.
type analysisJob struct {
	camera     Camera
	analysis   *analysis
	detections *detections // nil when the camera does not detect
	drift      *driftState
	look       *lookState
}

// scrapeOutcome counts a scrape's analyses, to tell a collector that could
// not do its job from cameras that fail one by one.
type scrapeOutcome struct {
	analyzed, failed int // finished and good; failed or cut off at the deadline
	detected, missed int // of the analyzed frames of detecting cameras
}

func (o *scrapeOutcome) add(a *analysis, detects bool) {
	select {
	case <-a.done:
	default:
		o.failed++
		return
	}
	switch {
	case errors.Is(a.err, video.ErrNoPicture):
		// Up, but no picture yet: nothing to analyze, no failure.
	case a.err != nil:
		o.failed++
	default:
		o.analyzed++
		if !detects {
			break
		}
		if a.detectErr != nil {
			o.missed++
		} else {
			o.detected++
		}
	}
}

func (o scrapeOutcome) err() error {
	switch {
	case o.analyzed == 0 && o.failed > 0:
		return fmt.Errorf("none of the %d cameras that are up could be analyzed", o.failed)
	case o.detected == 0 && o.missed > 0:
		return fmt.Errorf("the detector failed on all %d cameras it ran on", o.missed)
	}
	return nil
}

// send reports a camera's analysis, a nil one being a camera that is down,
// and returns what the detector found if there is a detection to report. Failures
// are logged as they start and end, by events; one cut off at the deadline
// is also recorded for the pages, as the other failures are where they
// happen.
func (c *imageCollector) send(ch chan<- prometheus.Metric, name string, a *analysis, look *lookState) *found {
	success := func(v float64) {
		ch <- prometheus.MustNewConstMetric(c.success, prometheus.GaugeValue, v, name)
	}
	if a == nil {
		success(0)
		return nil
	}
	select {
	case <-a.done:
	default:
		c.logger.Debug("Frame analysis still running at the scrape deadline", "camera", name)
		look.cutOff(time.Now(), a)
		success(0)
		return nil
	}
	if a.err != nil {
		success(0)
		return nil
	}
	a.reported.Store(true)
	ch <- prometheus.MustNewConstMetric(c.brightness, prometheus.GaugeValue, a.stats.Brightness, name)
	ch <- prometheus.MustNewConstMetric(c.contrast, prometheus.GaugeValue, a.stats.Contrast, name)
	ch <- prometheus.MustNewConstMetric(c.darkRatio, prometheus.GaugeValue, a.stats.DarkRatio, name)
	ch <- prometheus.MustNewConstMetric(c.overexposed, prometheus.GaugeValue, a.stats.OverexposedRatio, name)
	ch <- prometheus.MustNewConstMetric(c.sharpness, prometheus.GaugeValue, a.stats.Sharpness, name)
	ch <- prometheus.MustNewConstMetric(c.edgeDensity, prometheus.GaugeValue, a.stats.EdgeDensity, name)
	ch <- prometheus.MustNewConstMetric(c.saturation, prometheus.GaugeValue, a.stats.Saturation, name)
	for channel, v := range map[string]float64{"red": a.stats.Red, "green": a.stats.Green, "blue": a.stats.Blue} {
		ch <- prometheus.MustNewConstMetric(c.channelMean, prometheus.GaugeValue, v, name, channel)
	}
	if a.detectErr != nil {
		success(0)
		return nil
	}
	success(1)
	return a.found
}

// begin returns the camera's part of the scrape, with its analysis in
// flight, a finished one younger than minInterval, or a newly started one
// when the camera is up. What it returns was read under the lock, since
// concurrent scrapes replace the camera's detections. A camera that
// detects has the frame run through its detections' detector, new
// detections being made when the detector changed.
func (c *imageCollector) begin(cam Camera, det detector.Detector, now time.Time) analysisJob {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.states[cam]
	cfg := cam.Config()
	if st == nil {
		logger := c.logger.With("camera", cam.Name())
		st = &cameraState{events: &events{logger: logger}, drift: newDriftState(cfg, logger, c.drift), look: &lookState{}}
		c.states[cam] = st
	}
	switch {
	case det == nil || !*cfg.Detect.Enabled:
		st.detections = nil
	case st.detections == nil || st.detections.detector != det:
		st.detections = newDetections(det, cfg.Detect.Classes)
	}
	job := analysisJob{camera: cam, detections: st.detections, drift: st.drift, look: st.look}
	if cam.Up(now) {
		job.analysis = c.analysis(cam, st, now)
	}
	return job
}

// analysis returns the camera's analysis to share, or starts one. Needs mu.
func (c *imageCollector) analysis(cam Camera, st *cameraState, now time.Time) *analysis {
	if a := st.analysis; a != nil {
		select {
		case <-a.done:
			// Failures are not shared: most mean no frame had arrived yet.
			// A good result is, within minInterval, and until a scrape
			// reported it, if the scrapes came on time: one prepared for
			// the next scrape, or that missed its scrape's deadline, is
			// the next scrape's.
			age := now.Sub(a.start)
			if a.err == nil && a.detectErr == nil && (age < c.minInterval || !a.reported.Load() && age < c.interval*3/2) {
				return a
			}
		default:
			return a // still running: share it rather than queue a second one
		}
	}
	a := &analysis{done: make(chan struct{}), start: now}
	st.analysis = a
	counters, events, drifts, look := st.detections, st.events, st.drift, st.look
	go func() {
		c.workers <- struct{}{}
		defer func() {
			<-c.workers
			events.analyzed(a)
			close(a.done)
		}()
		var size func(int, int) (int, int)
		if counters != nil {
			size = detector.ScaledSize(counters.detector)
		}
		frame, err := cam.Analyze(size)
		if err != nil {
			a.err = err
			look.fail(time.Now(), a, err)
			return
		}
		a.stats = frame.Stats
		if counters != nil {
			a.found, a.detectErr = counters.detect(cam.Config(), frame)
		}
		now := time.Now()
		drifts.observe(now, frame, a.found, c.drift)
		look.observe(now, a, frame)
	}()
	return a
}

// forgetRemoved drops the state of cameras no longer running, which a
// reload stopped or replaced.
func (c *imageCollector) forgetRemoved(cameras []Camera) {
	running := make(map[Camera]bool, len(cameras))
	for _, cam := range cameras {
		running[cam] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for s := range c.states {
		if !running[s] {
			delete(c.states, s)
		}
	}
}
