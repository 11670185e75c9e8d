// camera_exporter watches RTSP cameras and exports stream health, image
// statistics and what an object detector finds, for Prometheus.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/camera/decode"
	"github.com/camera-exporter/camera_exporter/collector"
	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/reference"
)

const defaultListenAddress = ":9845"

// The bounds of a shutdown: scrapes in flight get httpShutdownTimeout to
// finish, then the cameras closeTimeout to end their sessions.
const (
	httpShutdownTimeout = 2 * time.Second
	closeTimeout        = 3 * time.Second
)

func main() { os.Exit(run()) }

// run runs the command line's command and returns the process's exit code,
// so that its deferred cleanups run.
func run() (code int) {
	var (
		configFile = kingpin.Flag("config.file", "Camera exporter configuration file.").
				Default("exporter.yml").String()
		configCheck = kingpin.Flag("config.check", "Validate the configuration file, print what is wrong, and exit.").
				Bool()
		metricsPath = kingpin.Flag("web.telemetry-path", "Path under which to expose metrics.").
				Default("/metrics").String()
		disableExporterMetrics = kingpin.Flag("web.disable-exporter-metrics",
			"Exclude metrics about the exporter process itself (process_*, go_*).").Bool()
		timeoutOffset = kingpin.Flag("web.timeout-offset",
			"Seconds subtracted from Prometheus' scrape timeout, to leave time to send the response.").
			Default("0.5").Float64()
		toolkitFlags = kingpinflag.AddFlags(kingpin.CommandLine, defaultListenAddress)

		_          = kingpin.Command("serve", "Run the exporter (the default command).").Default()
		refBuild   = kingpin.Command("reference", "Reference profiles for the drift scores.").Command("build", "Build a camera's reference profile from a folder of images or from its stream, with the camera's settings and the detector of --config.file.")
		refCamera  = refBuild.Flag("camera", "The camera, by name in --config.file, whose settings, and stream without --images, the reference is built with.").Required().String()
		refImages  = refBuild.Flag("images", "Build from the images in this folder and below (e.g. the detector's training set) instead of the stream.").ExistingDir()
		refFor     = refBuild.Flag("duration", "How long to watch the camera's stream.").Default("10m").Duration()
		refEvery   = refBuild.Flag("interval", "How often to analyze a frame of the stream.").Default("5s").Duration()
		refOutput  = refBuild.Flag("output", "The file to write; by default the camera's reference file, <reference.dir>/<camera>.json.").String()
		refReplace = refBuild.Flag("replace", "Overwrite an existing reference.").Bool()
	)
	promslogConfig := &promslog.Config{}
	flag.AddFlags(kingpin.CommandLine, promslogConfig)
	kingpin.Version(version.Print("camera_exporter"))
	kingpin.CommandLine.UsageWriter(os.Stdout)
	kingpin.HelpFlag.Short('h')
	command := kingpin.Parse()
	logger := promslog.New(promslogConfig)

	if command == refBuild.FullCommand() {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		path, profile, err := reference.Build(ctx, reference.BuildOptions{
			ConfigFile:  *configFile,
			Camera:      *refCamera,
			Images:      *refImages,
			Duration:    *refFor,
			Interval:    *refEvery,
			Output:      *refOutput,
			Replace:     *refReplace,
			NewDecoder:  decode.New,
			OpenImage:   openImage,
			NewDetector: loadDetector,
			Logger:      logger,
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("%s: reference of camera %s from %d frames (%s)\n", path, *refCamera, profile.Frames, profile.Source)
		return 0
	}

	if *configCheck {
		if err := checkConfig(*configFile, logger); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}

	logger.Info("Starting camera_exporter", "version", version.Info())
	logger.Info("Build context", "build_context", version.BuildContext(),
		"opencv", decode.OpenCVVersion(), "libavcodec", decode.LibavcodecVersion())

	// Caught from the start, so that the cameras' sessions always end
	// with a TEARDOWN, and a reload asked for while the configuration
	// loads waits for the reloader.
	term := make(chan os.Signal, 2)
	signal.Notify(term, syscall.SIGTERM, os.Interrupt)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)

	manager := camera.NewManager(decode.New, loadDetector, logger)
	var reloads *reloader // once the configuration is loaded
	defer func() {
		if err := closeCameras(manager, reloads, closeTimeout); err != nil {
			logger.Error("Error shutting down", "err", err)
			code = 1
			return
		}
		logger.Info("Camera sessions closed")
	}()
	exporterRegistry := prometheus.NewRegistry()
	safeConfig := config.NewSafeConfig(exporterRegistry, manager.Apply)
	if err := safeConfig.Reload(*configFile); err != nil {
		logger.Error("Error loading config", "err", err)
		return 1
	}
	logger.Info("Loaded config file", "file", *configFile, "cameras", len(safeConfig.Get().Cameras))

	cameraCollector, err := collector.NewCameraCollector(collector.ManagerCameras(manager), logger)
	if err != nil {
		logger.Error("Couldn't create collector", "err", err)
		return 1
	}
	logger.Info("Enabled collectors", "collectors", cameraCollector.Names())

	exporterRegistry.MustRegister(versioncollector.NewCollector("camera_exporter",
		versioncollector.WithExtraConstLabels(prometheus.Labels{
			"opencv":     decode.OpenCVVersion(),
			"libavcodec": decode.LibavcodecVersion(),
		})))
	if !*disableExporterMetrics {
		exporterRegistry.MustRegister(
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
			collectors.NewGoCollector(),
		)
	}

	reloads = startReloader(func() error {
		if err := safeConfig.Reload(*configFile); err != nil {
			logger.Error("Error reloading config", "err", err)
			return err
		}
		logger.Info("Reloaded config file", "cameras", len(safeConfig.Get().Cameras))
		return nil
	}, hup)

	http.Handle(*metricsPath, metricsHandler(cameraCollector, exporterRegistry, *timeoutOffset, logger))
	http.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "Healthy")
	})
	http.Handle("POST /-/reload", reloads)
	http.HandleFunc("/-/reload", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "This endpoint requires a POST request.", http.StatusMethodNotAllowed)
	})
	http.HandleFunc("/config", func(w http.ResponseWriter, _ *http.Request) {
		out, err := safeConfig.Get().Redacted()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(out) //nolint:errcheck // the client went away
	})
	if *metricsPath != "/" {
		landingPage, err := web.NewLandingPage(web.LandingConfig{
			Name:        "Camera Exporter",
			Description: "Prometheus exporter for RTSP camera streams",
			Version:     version.Info(),
			Links: []web.LandingLinks{
				{Address: *metricsPath, Text: "Metrics"},
				{Address: "/config", Text: "Configuration", Description: "with secrets redacted"},
				{Address: "/-/healthy", Text: "Health"},
			},
		})
		if err != nil {
			logger.Error("Couldn't create landing page", "err", err)
			return 1
		}
		http.Handle("/", landingPage)
	}

	server := &http.Server{ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- web.ListenAndServe(server, toolkitFlags, logger) }()
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

// closeCameras stops the reloads, so that none starts a camera again, then
// ends every camera's session with a TEARDOWN and frees the decoders and the
// detector, waiting at most timeout in all. reloads may be nil.
func closeCameras(manager *camera.Manager, reloads *reloader, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if reloads != nil {
		if err := reloads.stop(ctx); err != nil {
			return err
		}
	}
	closed := make(chan struct{})
	go func() {
		manager.Close()
		close(closed)
	}()
	select {
	case <-closed:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("camera sessions still closing after %s", timeout)
	}
}

// checkConfig validates the configuration file and loads its model, as
// the exporter would at start.
func checkConfig(path string, logger *slog.Logger) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	if cfg.Detector == nil {
		fmt.Printf("%s: valid, %d cameras, no detector\n", path, len(cfg.Cameras))
		return nil
	}
	det, err := loadDetector(cfg.Detector, logger)
	if err != nil {
		return fmt.Errorf("%s: detector: %w", path, err)
	}
	defer det.Close()
	info := det.Info()
	fmt.Printf("%s: valid, %d cameras, detector %s loads: %s layout, %dx%d input, %d classes, %s backend on %s\n",
		path, len(cfg.Cameras), cfg.Detector.Model, info.Layout, info.InputWidth, info.InputHeight,
		len(det.Labels()), info.Backend, info.Target)
	return nil
}

// openImage reads a photograph for reference.FromImages.
func openImage(path string) (reference.Image, error) {
	im, err := decode.OpenImage(path)
	if err != nil {
		return nil, err // not a nil *decode.Image in a non-nil interface
	}
	return im, nil
}
