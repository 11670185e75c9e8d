// Package probe serves /probe, blackbox_exporter's multi-target pattern for
// cameras: Prometheus names the camera in the request
// (/probe?target=<camera>&module=<module>), from its own service
// discovery, and shards cameras over exporter replicas with hashmod. The
// camera's settings come from a module of the configuration file and its
// credentials from an auth block, so that none travels in a URL, a label
// or a Prometheus configuration.
//
// A probe reads a session that stays open between probes, as the
// configured cameras' do: the first probe of a camera opens it, and one
// that no probe read for the idle timeout ends. Each probe answers from a
// fresh registry, with the same per-camera metrics as /metrics.
package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/camera-exporter/camera_exporter/analysis"
	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/collector"
	"github.com/camera-exporter/camera_exporter/config"
)

// Options configure a Handler.
type Options struct {
	// Config returns the configuration in force, whose modules and auths
	// probes use.
	Config  func() *config.Config
	Manager *camera.Manager
	// Detector holds the detector in force, which probed cameras use as
	// the configured ones do.
	Detector *analysis.CurrentDetector
	// Metrics is /metrics' collector: each probed camera gets collectors
	// of the same names, whose analyses share its workers.
	Metrics *collector.CameraCollector
	// MaxSessions bounds the sessions open for probes.
	MaxSessions int
	// IdleTimeout ends a session that no probe read for this long.
	IdleTimeout time.Duration
	// ScrapeContext ends when the probe must have answered.
	ScrapeContext func(*http.Request) (context.Context, context.CancelFunc)
	Logger        *slog.Logger
}

// Handler serves /probe. Close ends its sessions.
type Handler struct {
	opts     Options
	sessions *sessions
	probes   *prometheus.CounterVec
	descs    descs
}

// Probe results, the result label of camera_exporter_probes_total.
const (
	resultSuccess  = "success"
	resultFailure  = "failure"
	resultRejected = "rejected"
)

// New returns the handler of /probe, and registers its metrics, about the
// exporter rather than a camera, with reg: they are on /metrics.
func New(opts Options, reg prometheus.Registerer) *Handler {
	h := &Handler{
		opts:     opts,
		sessions: newSessions(opts.Manager, opts.Detector, opts.Metrics, opts.MaxSessions, opts.IdleTimeout, opts.Logger),
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "camera_exporter_probes_total",
			Help: "Requests to /probe, by result: success, failure (probe_success 0), rejected (a bad request, answered 400 without connecting).",
		}, []string{"result"}),
		descs: newDescs(),
	}
	for _, r := range []string{resultSuccess, resultFailure, resultRejected} {
		h.probes.WithLabelValues(r)
	}
	reg.MustRegister(h.probes, h.sessions.closed,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "camera_exporter_probe_sessions",
			Help: "Camera sessions open for probes.",
		}, func() float64 { return float64(h.sessions.count()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "camera_exporter_probe_sessions_limit",
			Help: "The most camera sessions that probes may open (--probe.max-sessions).",
		}, func() float64 { return float64(opts.MaxSessions) }),
	)
	return h
}

// Close ends the probes' sessions with a TEARDOWN, and waits for them.
func (h *Handler) Close() { h.sessions.Close() }

// Failure reasons, the reason label of probe_failure_info.
const (
	// reasonSessionLimit: the probe would have opened a session, and
	// --probe.max-sessions are open.
	reasonSessionLimit = "session_limit"
	// reasonNotReady: the session has not delivered a picture yet, nor
	// failed: it is connecting.
	reasonNotReady = "not_ready"
	// reasonDown: the camera is down, camera_up 0; camera_reconnects_total
	// says why.
	reasonDown = "down"
	// reasonAnalysisFailed: the camera is up, but its picture could not be
	// analyzed within the deadline: camera_frame_analysis_success 0.
	reasonAnalysisFailed = "analysis_failed"
)

type descs struct {
	success, duration, failure *prometheus.Desc
}

func newDescs() descs {
	return descs{
		success:  prometheus.NewDesc("probe_success", "1 if the camera is up and its picture was analyzed, else 0.", nil, nil),
		duration: prometheus.NewDesc("probe_duration_seconds", "How long the probe took.", nil, nil),
		failure: prometheus.NewDesc("probe_failure_info",
			"Why the probe failed, value 1: session_limit, not_ready (connecting), down (camera_up 0) or analysis_failed.", []string{"reason"}, nil),
	}
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	q := r.URL.Query()
	module := q.Get("module")
	cfg := h.opts.Config()
	cam, configured, err := cfg.ProbeCamera(q.Get("target"), module, q.Get("auth"), q.Get("camera"))
	if err != nil {
		h.probes.WithLabelValues(resultRejected).Inc()
		h.opts.Logger.Debug("Probe rejected", "err", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ctx, cancel := h.opts.ScrapeContext(r)
	defer cancel()

	// Cameras the configuration lists are its to run; the others are told
	// apart by module as well, whose settings they run with.
	key := "camera\x00" + cam.Name
	if !configured {
		key = module + "\x00" + cam.Name + "\x00" + cam.StreamURL()
	}
	allowDial := allowedBy(cfg.Modules[module], module)
	registry := prometheus.NewRegistry()
	var scrape *collector.Scrape
	sess, err := h.sessions.acquire(key, cam, configured, allowDial, cfg.Modules[module].ReferenceFileLimit)
	switch {
	case errors.Is(err, errSessionLimit):
	case err != nil:
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	default:
		defer h.sessions.release(sess)
		waitReady(ctx, sess.stream)
		scrape = sess.collector.ForProbe(ctx)
		registry.MustRegister(scrape)
	}
	families, gatherErr := registry.Gather()
	reason := reasonSessionLimit
	if sess != nil {
		up, analyzed := scrape.CameraOutcome(cam.Name)
		reason = failure(up, analyzed, sess.stream)
	}
	result := prometheus.NewRegistry()
	result.MustRegister(probeResult{descs: h.descs, reason: reason, duration: time.Since(start)})
	if reason == "" {
		h.probes.WithLabelValues(resultSuccess).Inc()
	} else {
		h.probes.WithLabelValues(resultFailure).Inc()
		h.opts.Logger.Debug("Probe failed", "camera", cam.Name, "reason", reason)
	}
	gathered := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return families, gatherErr })
	promhttp.HandlerFor(prometheus.Gatherers{result, gathered}, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(h.opts.Logger.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
	}).ServeHTTP(w, r)
}

// allowedBy vets the host:port a session of module connects to.
func allowedBy(m config.Module, module string) func(addr string) error {
	return func(addr string) error {
		host, _, err := net.SplitHostPort(addr)
		if err != nil || !m.Allows(host) {
			return fmt.Errorf("%s: %w %q", addr, config.ErrTargetNotAllowed, module)
		}
		return nil
	}
}

// readyPoll is how often a probe looks whether a new session is ready.
const readyPoll = 20 * time.Millisecond

// waitReady waits, until ctx ends, for a session that is still connecting
// to deliver its first picture to analyze. A session that failed an
// attempt already is not waited for: the probe reports it down.
func waitReady(ctx context.Context, s *camera.Stream) {
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for !s.Ready() && !failedOnce(s) {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func failedOnce(s *camera.Stream) bool {
	for _, n := range s.Status().Reconnects {
		if n > 0 {
			return true
		}
	}
	return false
}

// failure returns why the probe of s failed, or "" if it succeeded: the
// camera was up and, where a collector reports analyses, its picture was
// analyzed.
func failure(up, analyzed bool, s *camera.Stream) string {
	switch {
	case up && analyzed:
		return ""
	case !s.Ready() && !failedOnce(s):
		return reasonNotReady
	case !up:
		return reasonDown
	}
	return reasonAnalysisFailed
}

// probeResult is a probe's own metrics.
type probeResult struct {
	descs    descs
	reason   string // "" for success
	duration time.Duration
}

func (p probeResult) Describe(ch chan<- *prometheus.Desc) {
	ch <- p.descs.success
	ch <- p.descs.duration
	ch <- p.descs.failure
}

func (p probeResult) Collect(ch chan<- prometheus.Metric) {
	success := 1.0
	if p.reason != "" {
		success = 0
		ch <- prometheus.MustNewConstMetric(p.descs.failure, prometheus.GaugeValue, 1, p.reason)
	}
	ch <- prometheus.MustNewConstMetric(p.descs.success, prometheus.GaugeValue, success)
	ch <- prometheus.MustNewConstMetric(p.descs.duration, prometheus.GaugeValue, p.duration.Seconds())
}
