// camera_exporter watches RTSP cameras and exports stream health, image
// statistics and what an object detector finds, for Prometheus.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/camera/decode"
	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/reference"
)

const defaultListenAddress = ":9845"

func main() { os.Exit(run()) }

// run runs the command line's command and returns the process's exit code,
// so that its deferred cleanups run.
func run() int {
	var (
		configFile = kingpin.Flag("config.file", "Camera exporter configuration file.").
				Default("exporter.yml").String()
		configCheck = kingpin.Flag("config.check", "Validate the configuration file, print what is wrong, and exit.").
				Bool()
		reloadTimeout = kingpin.Flag("config.reload-timeout",
			"How long loading the configuration file and the files it names (labels, password files...) may take at start or at a reload; past it, the reload fails and the configuration in force stays. Loading the model is not included.").
			Default("30s").Duration()
		metricsPath = kingpin.Flag("web.telemetry-path", "Path under which to expose metrics.").
				Default("/metrics").String()
		disableExporterMetrics = kingpin.Flag("web.disable-exporter-metrics",
			"Exclude metrics about the exporter process itself (process_*, go_*).").Bool()
		timeoutOffset = kingpin.Flag("web.timeout-offset",
			"Seconds subtracted from Prometheus' scrape timeout, to leave time to send the response.").
			Default("0.5").Float64()
		maxRequests = kingpin.Flag("web.max-requests",
			"Maximum number of parallel scrape requests. Use 0 to disable.").
			Default("40").Int()
		enablePprof = kingpin.Flag("web.enable-pprof",
			"Serve Go's runtime profiles under /debug/pprof/ (e.g. go tool pprof http://host:9845/debug/pprof/profile?seconds=30). Off by default: anyone who reaches the port could read them, and a CPU profile or trace costs CPU while it runs.").
			Bool()
		externalURL = kingpin.Flag("web.external-url",
			"The URL under which operators reach the exporter (e.g. behind a reverse proxy), exported as camera_exporter_external_url_info for the alerts' and the dashboard's links to the camera pages. Default: none, the links use the scrape target's address.").
			String()
		enableSnapshots = kingpin.Flag("web.enable-snapshots",
			"Serve each camera's latest analyzed picture, with the detector's boxes, on /cameras. Off by default: the pictures show people, and anyone who reaches the port would see them.").
			Bool()
		probeMaxSessions = kingpin.Flag("probe.max-sessions",
			"Maximum number of camera sessions that /probe opens; a probe that would open one more fails with reason session_limit.").
			Default("100").Int()
		probeIdleTimeout = kingpin.Flag("probe.session-idle-timeout",
			"A camera session that /probe opened and no probe read for this long is closed with a TEARDOWN.").
			Default("5m").Duration()
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

	switch {
	case command == refBuild.FullCommand():
		return buildReference(reference.BuildOptions{
			ConfigFile:  *configFile,
			Camera:      *refCamera,
			Images:      *refImages,
			Duration:    *refFor,
			Interval:    *refEvery,
			Output:      *refOutput,
			Replace:     *refReplace,
			NewDecoder:  camera.AsNewDecoder(decode.New),
			OpenImage:   openImage,
			NewDetector: loadDetector,
			Logger:      logger,
		})
	case *configCheck:
		if err := checkConfig(*configFile, logger); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}
	return serve(serveOptions{
		configFile:             *configFile,
		reloadTimeout:          *reloadTimeout,
		metricsPath:            *metricsPath,
		disableExporterMetrics: *disableExporterMetrics,
		timeoutOffset:          *timeoutOffset,
		maxRequests:            *maxRequests,
		enablePprof:            *enablePprof,
		enableSnapshots:        *enableSnapshots,
		externalURL:            *externalURL,
		probeMaxSessions:       *probeMaxSessions,
		probeIdleTimeout:       *probeIdleTimeout,
		toolkitFlags:           toolkitFlags,
	}, logger)
}

// buildReference runs `camera_exporter reference build`.
func buildReference(opts reference.BuildOptions) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	path, profile, err := reference.Build(ctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("%s: reference of camera %s from %d frames (%s)\n", path, opts.Camera, profile.Frames, profile.Source)
	if profile.HasView() {
		fmt.Printf("view: %dx%d pictures, for camera_view_* to measure how far the view moved\n", profile.Width, profile.Height)
	} else {
		fmt.Println("no view: unrelated images share none, so camera_view_* stay absent; build from the camera's stream for them")
	}
	return 0
}

// checkConfig validates the configuration file and loads its model, as
// the exporter would at start, and says what the loader made of it.
func checkConfig(path string, logger *slog.Logger) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	cameras := fmt.Sprintf("%d cameras", len(cfg.Cameras))
	if len(cfg.Modules) > 0 {
		cameras += fmt.Sprintf(", %d probe modules", len(cfg.Modules))
	}
	if cfg.Detector == nil {
		fmt.Printf("%s: valid, %s, no detector\n", path, cameras)
		return nil
	}
	det, err := loadDetector(cfg.Detector, logger)
	if err != nil {
		return fmt.Errorf("%s: detector: %w", path, err)
	}
	defer det.Close()
	info := det.Info()
	fmt.Printf("%s: valid, %s, detector %s loads: %s layout, %dx%d input, %d classes, %s backend on %s\n",
		path, cameras, cfg.Detector.Model, info.Layout, info.InputWidth, info.InputHeight,
		len(det.Labels()), info.Backend, info.Target)
	// What the loader changed in the model's graph in memory, so that a
	// failure at run time can be traced to it.
	for _, rewrite := range info.Rewrites {
		fmt.Printf("  rewrote: %s\n", rewrite)
	}
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
