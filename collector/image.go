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

// imageCollector decodes each camera's latest picture at scrape time and
// reports image statistics. Analyses run in a bounded pool and may outlive
// the scrape that started them: a camera that is slower than its timeout is
// left out of that scrape, and the next one picks up the finished result.
type imageCollector struct {
	cameras     Cameras
	logger      *slog.Logger
	workers     chan struct{}
	minInterval time.Duration

	mu       sync.Mutex
	analyses map[*camera.Stream]*analysis

	brightness, contrast, darkRatio, success *prometheus.Desc
}

// analysis is one camera's latest result, or the one being computed.
type analysis struct {
	done  chan struct{} // closed when stats and err are set
	start time.Time
	stats camera.ImageStats
	err   error
}

func newImageCollector(cameras Cameras, logger *slog.Logger) (Collector, error) {
	shared := " Scrapes within --collector.image.min-interval of each other share one analysis."
	return &imageCollector{
		cameras:     cameras,
		logger:      logger,
		workers:     make(chan struct{}, max(*imageWorkers, 1)),
		minInterval: *imageMinInterval,
		analyses:    map[*camera.Stream]*analysis{},
		brightness: cameraDesc("frame_brightness_ratio",
			"Mean luma of the camera's latest analyzed frame, 0 (black) to 1 (white) on the full-range scale."+shared),
		contrast: cameraDesc("frame_contrast_ratio",
			"Standard deviation of luma of the camera's latest analyzed frame, on the full-range 0 to 1 scale."+shared),
		darkRatio: cameraDesc("frame_dark_pixels_ratio",
			"Share of pixels of the camera's latest analyzed frame whose luma is below the camera's dark_threshold."+shared),
		success: cameraDesc("frame_analysis_success",
			"1 if the camera's latest frame was decoded and analyzed within the scrape's deadline, else 0."),
	}, nil
}

func (c *imageCollector) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	streams := c.cameras.Streams()
	now := time.Now()
	pending := make(map[*camera.Stream]*analysis, len(streams))
	for _, s := range streams {
		if s.Up(now) {
			pending[s] = c.analyze(s, now)
		}
	}
	c.forgetRemoved(streams)

	for _, s := range streams {
		a := pending[s]
		if a == nil {
			ch <- prometheus.MustNewConstMetric(c.success, prometheus.GaugeValue, 0, s.Name())
			continue
		}
		// Deadlines count from the scrape's start, so slow cameras do not add up.
		deadline, cancel := context.WithDeadline(ctx, now.Add(time.Duration(s.Config().Timeout)))
		select {
		case <-a.done:
		case <-deadline.Done():
		}
		cancel()
		c.send(ch, s.Name(), a)
	}
	return nil
}

func (c *imageCollector) send(ch chan<- prometheus.Metric, name string, a *analysis) {
	select {
	case <-a.done:
	default:
		ch <- prometheus.MustNewConstMetric(c.success, prometheus.GaugeValue, 0, name)
		c.logger.Debug("Frame analysis still running at the scrape deadline", "camera", name)
		return
	}
	if a.err != nil {
		ch <- prometheus.MustNewConstMetric(c.success, prometheus.GaugeValue, 0, name)
		c.logger.Debug("Frame analysis failed", "camera", name, "err", a.err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.success, prometheus.GaugeValue, 1, name)
	ch <- prometheus.MustNewConstMetric(c.brightness, prometheus.GaugeValue, a.stats.Brightness, name)
	ch <- prometheus.MustNewConstMetric(c.contrast, prometheus.GaugeValue, a.stats.Contrast, name)
	ch <- prometheus.MustNewConstMetric(c.darkRatio, prometheus.GaugeValue, a.stats.DarkRatio, name)
}

// analyze returns the camera's analysis in flight, a finished one younger
// than minInterval, or a newly started one.
func (c *imageCollector) analyze(s *camera.Stream, now time.Time) *analysis {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a := c.analyses[s]; a != nil {
		select {
		case <-a.done:
			// Failures are not shared: most mean no frame had arrived yet.
			if a.err == nil && now.Sub(a.start) < c.minInterval {
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
		a.stats, a.err = s.Analyze()
		<-c.workers
		close(a.done)
	}()
	return a
}

// forgetRemoved drops results of streams no longer running, which a reload
// stopped or replaced.
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
}
