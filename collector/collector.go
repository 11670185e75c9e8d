// Package collector turns the cameras' sessions and the analyses of their
// pictures into Prometheus metrics. Like node_exporter, each collector
// registers itself from init() behind a --collector.<name> flag and reports
// its own scrape duration and success. The collectors only read: sessions
// count in package camera, analyses run in package analysis. Per-camera
// values are const metrics built at scrape time, so a camera removed from
// the configuration disappears from the next scrape.
package collector

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/camera-exporter/camera_exporter/analysis"
)

var (
	scrapeDurationDesc = prometheus.NewDesc("camera_scrape_collector_duration_seconds",
		"How long a collector took to produce its metrics in this scrape, waiting for analyses included.",
		[]string{"collector"}, nil,
	)
	scrapeSuccessDesc = prometheus.NewDesc("camera_scrape_collector_success",
		"1 if a collector could do its job in this scrape, else 0.",
		[]string{"collector"}, nil,
	)
)

var (
	analysisWorkers = kingpin.Flag("collector.image.workers",
		"Frames decoded and analyzed at the same time, across all cameras, for the image, detection and drift collectors.").
		Default(strconv.Itoa(runtime.NumCPU())).Int()
	analysisMinInterval = kingpin.Flag("collector.image.min-interval",
		"Scrapes closer together than this share one analysis per camera, for the image, detection and drift collectors (e.g. an HA Prometheus pair).").
		Default("5s").Duration()
)

// Collector produces one family of metrics for a scrape.
type Collector interface {
	// Update sends metrics to ch; it must return by the scrape's deadline.
	Update(s *Scrape, ch chan<- prometheus.Metric) error
}

// collectorInfo says how to make a collector, and whether it needs the
// cameras' pictures analyzed.
type collectorInfo struct {
	new      func() Collector
	analyzes bool
}

var (
	factories      = map[string]collectorInfo{}
	collectorState = map[string]*bool{}
)

func registerCollector(name string, isDefaultEnabled, analyzes bool, f func() Collector) {
	state := "disabled"
	if isDefaultEnabled {
		state = "enabled"
	}
	flag := kingpin.Flag("collector."+name, fmt.Sprintf("Enable the %s collector (default: %s).", name, state)).
		Default(fmt.Sprint(isDefaultEnabled)).Bool()
	collectorState[name] = flag
	factories[name] = collectorInfo{new: f, analyzes: analyzes}
}

// CameraCollector runs the enabled collectors concurrently on each scrape.
type CameraCollector struct {
	cameras    analysis.Cameras
	collectors map[string]Collector
	analyzer   *analysis.Analyzer
	// analyzes tells whether an enabled collector reports analyses: only
	// then do scrapes start them.
	analyzes bool
	logger   *slog.Logger
}

// NewCameraCollector creates the collectors enabled by flags, or only those
// named in filters when any are given, and the Analyzer of the cameras'
// pictures they share: it runs no inference without the detection
// collector, and follows no drift without the drift collector.
func NewCameraCollector(cameras analysis.Cameras, logger *slog.Logger, filters ...string) (*CameraCollector, error) {
	enabled := map[string]bool{}
	for name, on := range collectorState {
		enabled[name] = *on
	}
	if len(filters) > 0 {
		enabled = map[string]bool{}
		for _, name := range filters {
			if _, ok := factories[name]; !ok {
				return nil, fmt.Errorf("unknown collector %q", name)
			}
			enabled[name] = true
		}
	}
	analyzer := analysis.New(cameras, analysis.Options{
		Detect:      enabled["detection"],
		Drift:       enabled["drift"],
		MinInterval: *analysisMinInterval,
		Slots:       make(chan struct{}, max(*analysisWorkers, 1)),
	}, logger)
	return newCameraCollector(cameras, enabled, analyzer, logger), nil
}

func newCameraCollector(cameras analysis.Cameras, enabled map[string]bool, analyzer *analysis.Analyzer, logger *slog.Logger) *CameraCollector {
	c := &CameraCollector{cameras: cameras, collectors: map[string]Collector{}, analyzer: analyzer, logger: logger}
	for name, on := range enabled {
		if on {
			c.collectors[name] = factories[name].new()
			c.analyzes = c.analyzes || factories[name].analyzes
		}
	}
	return c
}

// ForCameras returns collectors of the same names as c's over other
// cameras, a probe's, with an Analyzer of their own whose analyses share
// c's --collector.image.workers.
func (c *CameraCollector) ForCameras(cameras analysis.Cameras, logger *slog.Logger) *CameraCollector {
	enabled := make(map[string]bool, len(c.collectors))
	for name := range c.collectors {
		enabled[name] = true
	}
	return newCameraCollector(cameras, enabled, c.analyzer.ForCameras(cameras, logger), logger)
}

// Analyzer returns the Analyzer of the cameras' pictures, whose Looks the
// pages show.
func (c *CameraCollector) Analyzer() *analysis.Analyzer { return c.analyzer }

// Names lists the enabled collectors, sorted.
func (c *CameraCollector) Names() []string {
	return slices.Sorted(maps.Keys(c.collectors))
}

// WithContext binds a scrape's deadline to the collectors: the /metrics
// handler derives it from X-Prometheus-Scrape-Timeout-Seconds.
func (c *CameraCollector) WithContext(ctx context.Context) prometheus.Collector {
	return c.newScrape(ctx, false)
}

// ForProbe is WithContext for a probe of one camera: without
// camera_scrape_collector_*, whose failure would be the camera's, which
// probe_success reports; collector errors are logged at debug level. Once
// gathered, the Scrape tells how the camera fared.
func (c *CameraCollector) ForProbe(ctx context.Context) *Scrape {
	return c.newScrape(ctx, true)
}

func (c *CameraCollector) newScrape(ctx context.Context, probe bool) *Scrape {
	s := &Scrape{c: c, probe: probe, began: time.Now()}
	s.round = sync.OnceValue(func() analysis.Round { return c.analyzer.Scrape(ctx) })
	return s
}

// Scrape is one scrape of the collectors: a prometheus.Collector to
// register for one gathering. Its collectors share one round of analyses,
// made when the first of them needs it.
type Scrape struct {
	c     *CameraCollector
	probe bool
	began time.Time
	round func() analysis.Round
}

// Cameras returns the running cameras, sorted by name.
func (s *Scrape) Cameras() []analysis.Camera { return s.c.cameras.Cameras() }

// Round returns the scrape's analyses, waiting for them on first call.
func (s *Scrape) Round() analysis.Round { return s.round() }

// CameraOutcome tells, once the scrape was gathered, whether the named
// camera was up when it began and, where a collector reports analyses,
// whether its picture was analyzed: a probe's success.
func (s *Scrape) CameraOutcome(name string) (up, analyzed bool) {
	if !s.c.analyzes {
		cams := s.Cameras()
		i := slices.IndexFunc(cams, func(c analysis.Camera) bool { return c.Name() == name })
		return i >= 0 && cams[i].Up(s.began), true
	}
	for _, sc := range s.Round().Cameras {
		if sc.Name == name {
			return sc.Up, sc.Analysis.Succeeded()
		}
	}
	return false, false
}

// Describe implements prometheus.Collector.
func (s *Scrape) Describe(ch chan<- *prometheus.Desc) {
	if !s.probe {
		ch <- scrapeDurationDesc
		ch <- scrapeSuccessDesc
	}
}

// Collect implements prometheus.Collector.
func (s *Scrape) Collect(ch chan<- prometheus.Metric) {
	var wg sync.WaitGroup
	for name, c := range s.c.collectors {
		wg.Go(func() { s.execute(name, c, ch) })
	}
	wg.Wait()
}

func (s *Scrape) execute(name string, col Collector, ch chan<- prometheus.Metric) {
	begin := time.Now()
	err := col.Update(s, ch)
	duration := time.Since(begin)
	switch {
	case s.probe:
		if err != nil {
			s.c.logger.Debug("Collector failed", "name", name, "duration_seconds", duration.Seconds(), "err", err)
		}
		return
	case err != nil:
		s.c.logger.Error("Collector failed", "name", name, "duration_seconds", duration.Seconds(), "err", err)
	default:
		s.c.logger.Debug("Collector succeeded", "name", name, "duration_seconds", duration.Seconds())
	}
	success := 1.0
	if err != nil {
		success = 0
	}
	ch <- prometheus.MustNewConstMetric(scrapeDurationDesc, prometheus.GaugeValue, duration.Seconds(), name)
	ch <- prometheus.MustNewConstMetric(scrapeSuccessDesc, prometheus.GaugeValue, success, name)
}

// cameraDesc describes a per-camera metric: its labels begin with camera.
func cameraDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, append([]string{"camera"}, labels...), nil)
}

// gauge and counter make a camera's const metrics.
func gauge(desc *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
}

func counter(desc *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(desc, prometheus.CounterValue, v, labels...)
}

// histogram makes a const histogram of h.
func histogram(desc *prometheus.Desc, h analysis.Histogram, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.Bounds))
	var cumulative uint64
	for i, bound := range h.Bounds {
		cumulative += h.Counts[i]
		buckets[bound] = cumulative
	}
	return prometheus.MustNewConstHistogram(desc, h.Count, h.Sum, buckets, labels...)
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
