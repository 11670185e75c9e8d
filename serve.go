package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/camera-exporter/camera_exporter/analysis"
	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/camera/decode"
	"github.com/camera-exporter/camera_exporter/collector"
	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/pages"
	"github.com/camera-exporter/camera_exporter/probe"
)

// The bounds of a shutdown: scrapes in flight get httpShutdownTimeout to
// finish, then the cameras closeTimeout to end their sessions.
const (
	httpShutdownTimeout = 2 * time.Second
	closeTimeout        = 3 * time.Second
)

// serveOptions are the flags of the exporter's server.
type serveOptions struct {
	configFile             string
	reloadTimeout          time.Duration
	metricsPath            string
	disableExporterMetrics bool
	timeoutOffset          float64
	maxRequests            int
	enablePprof            bool
	enableSnapshots        bool
	externalURL            string
	probeMaxSessions       int
	probeIdleTimeout       time.Duration
	toolkitFlags           *web.FlagConfig
}

// serve runs the exporter until SIGTERM or SIGINT and returns the exit code.
func serve(opts serveOptions, logger *slog.Logger) (code int) {
	logger.Info("Starting camera_exporter", "version", version.Info())
	if opts.reloadTimeout <= 0 {
		logger.Error("Invalid --config.reload-timeout: must be greater than 0", "timeout", opts.reloadTimeout)
		return 1
	}
	// Before any camera is started for nothing.
	var externalURL string
	if opts.externalURL != "" {
		var err error
		if externalURL, err = parseExternalURL(opts.externalURL); err != nil {
			logger.Error("Invalid --web.external-url", "err", err)
			return 1
		}
	}
	logger.Info("Build context", "build_context", version.BuildContext(),
		"opencv", decode.OpenCVVersion(), "libavcodec", decode.LibavcodecVersion())

	// Caught from the start, so that the cameras' sessions always end
	// with a TEARDOWN, and a reload asked for while the configuration
	// loads waits for the reloader.
	term := make(chan os.Signal, 2)
	signal.Notify(term, syscall.SIGTERM, os.Interrupt)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)

	manager := camera.NewManager(camera.AsNewDecoder(decode.New), logger)
	detector := analysis.NewCurrentDetector(loadDetector, logger)
	if opts.enableSnapshots {
		manager.KeepSnapshots(pages.SnapshotWidth)
	}
	var (
		reloads *reloader      // once the configuration is loaded
		probes  *probe.Handler // once the collectors are made
	)
	defer func() {
		if err := closeCameras(manager, detector, reloads, probes, closeTimeout); err != nil {
			logger.Error("Error shutting down", "err", err)
			code = 1
			return
		}
		logger.Info("Camera sessions closed")
	}()
	exporterRegistry := prometheus.NewRegistry()
	safeConfig := config.NewSafeConfig(exporterRegistry, applyConfig(manager, detector), opts.reloadTimeout)
	if err := safeConfig.Reload(context.Background(), opts.configFile); err != nil {
		logger.Error("Error loading config", "err", err)
		return 1
	}
	logger.Info("Loaded config file", "file", opts.configFile, "cameras", len(safeConfig.Get().Cameras))

	cameraCollector, err := collector.NewCameraCollector(analysis.ManagerCameras(manager, detector), logger)
	if err != nil {
		logger.Error("Couldn't create collector", "err", err)
		return 1
	}
	logger.Info("Enabled collectors", "collectors", cameraCollector.Names())
	registerExporterMetrics(exporterRegistry, opts.disableExporterMetrics)
	if externalURL != "" {
		exporterRegistry.MustRegister(externalURLInfo(externalURL))
	}
	probes = probe.New(probe.Options{
		Config:      safeConfig.Get,
		Manager:     manager,
		Detector:    detector,
		Metrics:     cameraCollector,
		MaxSessions: opts.probeMaxSessions,
		IdleTimeout: opts.probeIdleTimeout,
		ScrapeContext: func(r *http.Request) (context.Context, context.CancelFunc) {
			return scrapeContext(r, opts.timeoutOffset)
		},
		Logger: logger.With("component", "probe"),
	}, exporterRegistry)

	reloads = startReloader(func(ctx context.Context) error {
		return reloadConfig(ctx, safeConfig, opts.configFile, logger)
	}, hup)

	operatorPages, err := pages.New(pages.Options{Cameras: cameraCollector.Analyzer(), Snapshots: opts.enableSnapshots, Logger: logger.With("component", "pages")})
	if err != nil {
		logger.Error("Couldn't create the camera pages", "err", err)
		return 1
	}
	mux, err := routes(opts, metricsHandler(cameraCollector, exporterRegistry, opts.timeoutOffset, opts.maxRequests, logger), probes, reloads, safeConfig)
	if err != nil {
		logger.Error("Couldn't create landing page", "err", err)
		return 1
	}
	operatorPages.Register(mux)
	server := newServer(mux, readTimeout, idleTimeout)
	served := make(chan error, 1)
	go func() { served <- web.ListenAndServe(server, opts.toolkitFlags, logger) }()
	select {
	case err := <-served:
		logger.Error("Error running HTTP server", "err", err)
		return 1
	case sig := <-term:
		logger.Info("Shutting down", "signal", sig)
	}
	go func() {
		sig := <-term
		logger.Error("Second signal during shutdown, exiting at once", "signal", sig)
		os.Exit(1)
	}()
	// No new scrapes; those in flight may finish.
	ctx, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
	defer cancel()
	if err := server.Shutdown(ctx); err != nil {
		logger.Warn("Scrapes still running at shutdown, closing their connections", "err", err)
		server.Close() //nolint:errcheck // the listeners are closed already
	}
	return 0 // the cameras close on the way out
}

// The server's timeouts, so that a client that stalls or leaves its
// connection open holds no goroutine and file descriptor for long.
const (
	// A scrape or a reload request is a few hundred bytes: reading it,
	// TLS handshake, headers and body, takes longer only for a stalled or
	// hostile client.
	readTimeout = 10 * time.Second
	// Above the usual scrape intervals (15s to 1m), so that Prometheus
	// keeps its connection from one scrape to the next.
	idleTimeout = 2 * time.Minute
)

// newServer is the exporter's HTTP server, with readTimeout and idleTimeout
// but in tests. It has no WriteTimeout: that would run from the request's
// headers through the whole scrape, which may take up to Prometheus' scrape
// timeout, as long as the scrape interval; the scrape's deadline ends the
// collection, and Prometheus closes the connection when it gives up.
func newServer(handler http.Handler, read, idle time.Duration) *http.Server {
	// ReadHeaderTimeout defaults to ReadTimeout.
	return &http.Server{Handler: handler, ReadTimeout: read, IdleTimeout: idle}
}

// registerExporterMetrics registers the metrics about the exporter itself.
func registerExporterMetrics(reg prometheus.Registerer, withoutProcess bool) {
	reg.MustRegister(versioncollector.NewCollector("camera_exporter",
		versioncollector.WithExtraConstLabels(prometheus.Labels{
			"opencv":     decode.OpenCVVersion(),
			"libavcodec": decode.LibavcodecVersion(),
		})))
	if !withoutProcess {
		reg.MustRegister(
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
			collectors.NewGoCollector(),
		)
	}
}

// parseExternalURL validates --web.external-url, and returns it without a
// trailing slash.
func parseExternalURL(s string) (string, error) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", errors.New("not a URL")
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return "", fmt.Errorf("%q: want an absolute http:// or https:// URL", s)
	case u.User != nil:
		// It becomes a label: no credentials.
		return "", errors.New("must not hold user information")
	case u.RawQuery != "" || u.Fragment != "":
		return "", fmt.Errorf("%q: must not have a query or fragment", s)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// externalURLInfo is camera_exporter_external_url_info, which the alerts'
// snapshot_url and the dashboard's links read.
func externalURLInfo(u string) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "camera_exporter_external_url_info",
		Help:        "The URL under which operators reach the exporter (--web.external-url), value 1; the camera pages are under <url>/cameras/<camera>.",
		ConstLabels: prometheus.Labels{"url": u},
	})
	g.Set(1)
	return g
}

// routes are the exporter's endpoints.
func routes(opts serveOptions, metrics, probes, reload http.Handler, safeConfig *config.SafeConfig) (*http.ServeMux, error) {
	mux := http.NewServeMux()
	mux.Handle(opts.metricsPath, readOnly(metrics))
	mux.Handle("/probe", readOnly(probes))
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "Healthy")
	})
	mux.Handle("POST /-/reload", reload)
	mux.HandleFunc("/-/reload", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "This endpoint requires a POST request.", http.StatusMethodNotAllowed)
	})
	mux.HandleFunc("/config", func(w http.ResponseWriter, _ *http.Request) {
		out, err := safeConfig.Get().Redacted()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(out) //nolint:errcheck // the client went away
	})
	if opts.enablePprof {
		// What net/http/pprof registers on http.DefaultServeMux, which
		// the exporter does not serve.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	if opts.metricsPath == "/" {
		return mux, nil
	}
	landingPage, err := web.NewLandingPage(web.LandingConfig{
		Name:        "Camera Exporter",
		Description: "Prometheus exporter for RTSP camera streams",
		Version:     version.Info(),
		Links: []web.LandingLinks{
			{Address: opts.metricsPath, Text: "Metrics"},
			{Address: "/cameras", Text: "Cameras", Description: "what each camera sees, and its latest analysis"},
			{Address: "/probe", Text: "Probe", Description: "a camera by URL or name: /probe?target=10.0.0.5:554/stream1&module=default"},
			{Address: "/config", Text: "Configuration", Description: "with secrets redacted"},
			{Address: "/-/healthy", Text: "Health"},
		},
	})
	if err != nil {
		return nil, err
	}
	mux.Handle("/", landingPage)
	return mux, nil
}

// readOnly answers 405 to methods other than GET and HEAD: a scrape only
// reads. A "GET /metrics" pattern would do it for most paths, but "GET /"
// conflicts with the other endpoints' patterns.
func readOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "This endpoint requires a GET or HEAD request.", http.StatusMethodNotAllowed)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// applyConfig returns the function that puts a configuration in force: a
// changed detector is loaded first, so that a model that fails to load
// changes nothing, then the cameras are, and the replaced detector is
// closed once the cameras removed stopped.
func applyConfig(manager *camera.Manager, detector *analysis.CurrentDetector) func(*config.Config) error {
	return func(cfg *config.Config) error {
		closeReplaced, err := detector.Apply(cfg.Detector)
		if err != nil {
			return err
		}
		manager.Apply(cfg)
		closeReplaced()
		return nil
	}
}

// closeCameras stops the reloads, so that none starts a camera again, then
// ends every camera's session, the probes' first, with a TEARDOWN and frees
// the decoders and the detector, waiting at most timeout in all. reloads
// and probes may be nil.
func closeCameras(manager *camera.Manager, detector *analysis.CurrentDetector, reloads *reloader, probes *probe.Handler, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if reloads != nil {
		if err := reloads.stop(ctx); err != nil {
			return err
		}
	}
	closed := make(chan struct{})
	go func() {
		if probes != nil {
			probes.Close()
		}
		manager.Close()
		detector.Close()
		close(closed)
	}()
	select {
	case <-closed:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("camera sessions still closing after %s", timeout)
	}
}
