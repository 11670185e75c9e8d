package collector

import (
	"context"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/detector"
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

// imageCollector decodes each camera's latest picture at scrape time,
// reports image statistics and, with a detector configured, what the
// detector finds in that same picture. Analyses run in a bounded pool and
// may outlive the scrape that started them: a camera that is slower than
// its timeout is left out of that scrape, and the next one picks up the
// finished result.
type imageCollector struct {
	cameras     Cameras
	logger      *slog.Logger
	workers     chan struct{}
	minInterval time.Duration

	mu         sync.Mutex
	analyses   map[*camera.Stream]*analysis
	detections map[*camera.Stream]*detections

	brightness, contrast, darkRatio, success *prometheus.Desc
	detection                                detectionDescs
}

// analysis is one camera's latest result, or the one being computed.
type analysis struct {
	done  chan struct{} // closed when the fields below are set
	start time.Time
	stats camera.ImageStats
	err   error
	// objects counts the frame's objects per counted class; nil when the
	// camera does not detect or detection failed, with detectErr.
	objects   map[string]int
	detectErr error
}

func newImageCollector(cameras Cameras, logger *slog.Logger) (Collector, error) {
	shared := " Scrapes within --collector.image.min-interval of each other share one analysis."
	return &imageCollector{
		cameras:     cameras,
		logger:      logger,
		workers:     make(chan struct{}, max(*imageWorkers, 1)),
		minInterval: *imageMinInterval,
		analyses:    map[*camera.Stream]*analysis{},
		detections:  map[*camera.Stream]*detections{},
		brightness: cameraDesc("frame_brightness_ratio",
			"Mean luma of the camera's latest analyzed frame, 0 (black) to 1 (white) on the full-range scale."+shared),
		contrast: cameraDesc("frame_contrast_ratio",
			"Standard deviation of luma of the camera's latest analyzed frame, on the full-range 0 to 1 scale."+shared),
		darkRatio: cameraDesc("frame_dark_pixels_ratio",
			"Share of pixels of the camera's latest analyzed frame whose luma is below the camera's dark_threshold."+shared),
		success: cameraDesc("frame_analysis_success",
			"1 if the camera's latest frame was decoded, analyzed and, if the camera detects, run through the detector within the scrape's deadline, else 0."),
		detection: newDetectionDescs(),
	}, nil
}

func (c *imageCollector) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	streams := c.cameras.Streams()
	det := c.cameras.Detector()
	if det != nil {
		ch <- c.detection.infoMetric(det)
	}
	now := time.Now()
	pending := make(map[*camera.Stream]*analysis, len(streams))
	counters := make(map[*camera.Stream]*detections, len(streams))
	for _, s := range streams {
		counters[s] = c.detectionsOf(s, det)
		if s.Up(now) {
			pending[s] = c.analyze(s, counters[s], now)
		}
	}
	c.forgetRemoved(streams)

	for _, s := range streams {
		a := pending[s]
		if a != nil {
			// Deadlines count from the scrape's start, so slow cameras do not add up.
			deadline, cancel := context.WithDeadline(ctx, now.Add(time.Duration(s.Config().Timeout)))
			select {
			case <-a.done:
			case <-deadline.Done():
			}
			cancel()
		}
		objects := c.send(ch, s.Name(), a)
		if d := counters[s]; d != nil {
			d.collect(ch, c.detection, s.Name(), objects)
		}
	}
	return nil
}

// send reports a camera's analysis, a nil one being a camera that is down,
// and returns the objects found if there is a detection to report.
func (c *imageCollector) send(ch chan<- prometheus.Metric, name string, a *analysis) map[string]int {
	fail := func(msg string, err error) map[string]int {
		ch <- prometheus.MustNewConstMetric(c.success, prometheus.GaugeValue, 0, name)
		if msg != "" {
			c.logger.Debug(msg, "camera", name, "err", err)
		}
		return nil
	}
	if a == nil {
		return fail("", nil)
	}
	select {
	case <-a.done:
	default:
		return fail("Frame analysis still running at the scrape deadline", nil)
	}
	if a.err != nil {
		return fail("Frame analysis failed", a.err)
	}
	ch <- prometheus.MustNewConstMetric(c.brightness, prometheus.GaugeValue, a.stats.Brightness, name)
	ch <- prometheus.MustNewConstMetric(c.contrast, prometheus.GaugeValue, a.stats.Contrast, name)
	ch <- prometheus.MustNewConstMetric(c.darkRatio, prometheus.GaugeValue, a.stats.DarkRatio, name)
	if a.detectErr != nil {
		return fail("Object detection failed", a.detectErr)
	}
	ch <- prometheus.MustNewConstMetric(c.success, prometheus.GaugeValue, 1, name)
	return a.objects
}

// detectionsOf returns the detection counters of a camera that detects,
// new ones when the detector changed, and nil for a camera that does not.
func (c *imageCollector) detectionsOf(s *camera.Stream, det detector.Detector) *detections {
	c.mu.Lock()
	defer c.mu.Unlock()
	cfg := s.Config()
	if det == nil || !*cfg.Detect.Enabled {
		delete(c.detections, s)
		return nil
	}
	d := c.detections[s]
	if d == nil || d.detector != det {
		d = newDetections(det, cfg.Detect.Classes)
		c.detections[s] = d
	}
	return d
}

// analyze returns the camera's analysis in flight, a finished one younger
// than minInterval, or a newly started one. With counters, the analysis
// runs the frame through their detector.
func (c *imageCollector) analyze(s *camera.Stream, counters *detections, now time.Time) *analysis {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a := c.analyses[s]; a != nil {
		select {
		case <-a.done:
			// Failures are not shared: most mean no frame had arrived yet.
			if a.err == nil && a.detectErr == nil && now.Sub(a.start) < c.minInterval {
				return a
			}
		default:
			return a // still running: share it rather than queue a second one
		}
	}
	a := &analysis{done: make(chan struct{}), start: now}
	c.analyses[s] = a
	go func() {
		c.workers <- struct{}{}
		defer func() {
			<-c.workers
			close(a.done)
		}()
		var place func(int, int) detector.Placement
		if counters != nil {
			place = counters.detector.Place
		}
		frame, err := s.Analyze(place)
		if err != nil {
			a.err = err
			return
		}
		a.stats = frame.Stats
		if counters != nil {
			a.objects, a.detectErr = counters.detect(s, frame)
		}
	}()
	return a
}

// forgetRemoved drops the state of streams no longer running, which a
// reload stopped or replaced.
func (c *imageCollector) forgetRemoved(streams []*camera.Stream) {
	running := make(map[*camera.Stream]bool, len(streams))
	for _, s := range streams {
		running[s] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for s := range c.analyses {
		if !running[s] {
			delete(c.analyses, s)
		}
	}
	for s := range c.detections {
		if !running[s] {
			delete(c.detections, s)
		}
	}
}
