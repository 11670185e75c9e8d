// Package collector turns camera streams into Prometheus metrics. Like
// node_exporter, each collector registers itself from init() behind a
// --collector.<name> flag and reports its own scrape duration and success.
// Per-camera values are const metrics built at scrape time, so a camera
// removed from the configuration disappears from the next scrape.
package collector

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/detector"
)

// Namespace prefixes every per-camera metric.
const namespace = "camera"

var (
	scrapeDurationDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "scrape", "collector_duration_seconds"),
		"camera_exporter: Duration of a collector scrape.",
		[]string{"collector"}, nil,
	)
	scrapeSuccessDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "scrape", "collector_success"),
		"camera_exporter: Whether a collector succeeded.",
		[]string{"collector"}, nil,
	)
)

// Camera is one running camera as the collectors see it: its settings,
// its session's state and counters, and an analysis of its latest picture.
// *camera.Stream implements it; tests use fakes.
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

// ManagerCameras adapts the cameras a camera.Manager runs to Cameras.
func ManagerCameras(m *camera.Manager) Cameras { return managerCameras{m} }

type managerCameras struct{ *camera.Manager }

func (m managerCameras) Cameras() []Camera {
	streams := m.Streams()
	cameras := make([]Camera, len(streams))
	for i, s := range streams {
		cameras[i] = s
	}
	return cameras
}

// Collector produces one family of metrics for a scrape.
type Collector interface {
	// Update sends metrics to ch; it must return by the ctx deadline.
	Update(ctx context.Context, ch chan<- prometheus.Metric) error
}

// resources are what the collectors of every CameraCollector made from
// one NewCameraCollector share: probes make one per probed camera, and their
// analyses must still take turns with those of /metrics.
type resources struct {
	// analysisSlots bounds the pictures decoded and analyzed at once.
	analysisSlots chan struct{}
}

type factory func(cameras Cameras, shared *resources, logger *slog.Logger) (Collector, error)

var (
	factories      = map[string]factory{}
	collectorState = map[string]*bool{}
)

func registerCollector(name string, isDefaultEnabled bool, f factory) {
	state := "disabled"
	if isDefaultEnabled {
		state = "enabled"
	}
	flag := kingpin.Flag("collector."+name, fmt.Sprintf("Enable the %s collector (default: %s).", name, state)).
		Default(fmt.Sprint(isDefaultEnabled)).Bool()
	collectorState[name] = flag
	factories[name] = f
}

// CameraCollector runs the enabled collectors concurrently on each scrape.
type CameraCollector struct {
	cameras    Cameras
	collectors map[string]Collector
	shared     *resources
	logger     *slog.Logger
}

// NewCameraCollector creates the collectors enabled by flags, or only those
// named in filters when any are given.
func NewCameraCollector(cameras Cameras, logger *slog.Logger, filters ...string) (*CameraCollector, error) {
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
	names := make([]string, 0, len(enabled))
	for name, on := range enabled {
		if on {
			names = append(names, name)
		}
	}
	shared := &resources{analysisSlots: make(chan struct{}, max(*imageWorkers, 1))}
	return newCameraCollector(cameras, names, shared, logger)
}

func newCameraCollector(cameras Cameras, names []string, shared *resources, logger *slog.Logger) (*CameraCollector, error) {
	collectors := make(map[string]Collector, len(names))
	for _, name := range names {
		c, err := factories[name](cameras, shared, logger.With("collector", name))
		if err != nil {
			return nil, fmt.Errorf("creating collector %s: %w", name, err)
		}
		collectors[name] = c
	}
	return &CameraCollector{cameras: cameras, collectors: collectors, shared: shared, logger: logger}, nil
}

// ForCameras returns new collectors of the same names as c's, with their
// own state, over other cameras: a probe's camera. Their analyses share
// c's --collector.image.workers.
func (c *CameraCollector) ForCameras(cameras Cameras, logger *slog.Logger) (*CameraCollector, error) {
	return newCameraCollector(cameras, c.Names(), c.shared, logger)
}

// Names lists the enabled collectors, sorted.
func (c *CameraCollector) Names() []string {
	names := make([]string, 0, len(c.collectors))
	for name := range c.collectors {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// WithContext binds a scrape's deadline to the collectors: the /metrics
// handler derives it from X-Prometheus-Scrape-Timeout-Seconds.
func (c *CameraCollector) WithContext(ctx context.Context) prometheus.Collector {
	return scrape{c: c, ctx: ctx}
}

// ForProbe is WithContext for a probe of one camera: without
// camera_scrape_collector_*, whose failure would be the camera's, which
// probe_success reports; collector errors are logged at debug level.
func (c *CameraCollector) ForProbe(ctx context.Context) prometheus.Collector {
	return scrape{c: c, ctx: ctx, probe: true}
}

type scrape struct {
	c     *CameraCollector
	ctx   context.Context
	probe bool
}

// Describe implements prometheus.Collector.
func (s scrape) Describe(ch chan<- *prometheus.Desc) {
	if !s.probe {
		ch <- scrapeDurationDesc
		ch <- scrapeSuccessDesc
	}
}

// Collect implements prometheus.Collector.
func (s scrape) Collect(ch chan<- prometheus.Metric) {
	var wg sync.WaitGroup
	for name, c := range s.c.collectors {
		wg.Go(func() { s.execute(name, c, ch) })
	}
	wg.Wait()
}

func (s scrape) execute(name string, col Collector, ch chan<- prometheus.Metric) {
	begin := time.Now()
	err := col.Update(s.ctx, ch)
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
