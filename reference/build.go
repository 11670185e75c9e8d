package reference

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/detector"
	"github.com/camera-exporter/camera_exporter/drift"
)

// BuildOptions say which camera's reference Build builds, from what, and
// where it writes it: the flags of `camera_exporter reference build`.
type BuildOptions struct {
	// ConfigFile is the exporter's configuration; Camera names the camera
	// in it whose settings, and detector, the reference is built with.
	ConfigFile string
	Camera     string
	// Images is a folder of images to build from; empty builds from the
	// camera's stream, watched for Duration, a frame analyzed every
	// Interval.
	Images             string
	Duration, Interval time.Duration
	// Output is the file to write; empty writes the camera's reference
	// file, in its reference.dir. An existing file is kept unless Replace.
	Output  string
	Replace bool

	// What needs cgo, passed in: the stream's decoders (decode.New), the
	// image reader (decode.OpenImage) and the detector loader (detector/dnn,
	// as main adapts it). NewDecoder is only needed without Images,
	// OpenImage only with them, NewDetector only if the configuration has a
	// detector.
	NewDecoder  camera.NewDecoder
	OpenImage   OpenImage
	NewDetector func(*config.Detector, *slog.Logger) (detector.Detector, error)

	Logger *slog.Logger
}

// Build builds a camera's reference profile as opts say, writes it, and
// returns the file it wrote and the profile. When ctx ends, a build from
// images fails; one from the stream ends early with the frames analyzed so
// far, as at the end of Duration.
func Build(ctx context.Context, opts BuildOptions) (string, *drift.Profile, error) {
	cfg, err := config.Load(opts.ConfigFile)
	if err != nil {
		return "", nil, err
	}
	i := slices.IndexFunc(cfg.Cameras, func(c config.Camera) bool { return c.Name == opts.Camera })
	if i < 0 {
		return "", nil, fmt.Errorf("%s: no camera %q", opts.ConfigFile, opts.Camera)
	}
	cam := cfg.Cameras[i]
	output := opts.Output
	if output == "" {
		if output = cam.ReferenceFile(); output == "" {
			return "", nil, fmt.Errorf("camera %q has no reference.dir: give --output", cam.Name)
		}
	}
	sampling := Options{DarkThreshold: *cam.DarkThreshold, Classes: cam.Detect.Classes}
	if cfg.Detector != nil && *cam.Detect.Enabled {
		det, err := opts.NewDetector(cfg.Detector, opts.Logger)
		if err != nil {
			return "", nil, fmt.Errorf("detector: %w", err)
		}
		defer det.Close()
		sampling.Detector = det
	}
	var profile *drift.Profile
	if opts.Images != "" {
		profile, err = FromImages(ctx, opts.Images, opts.OpenImage, sampling, opts.Logger)
	} else {
		opts.Logger.Info("Watching the camera", "camera", cam.Name, "duration", opts.Duration)
		profile, err = FromCamera(ctx, cam, opts.NewDecoder, opts.Duration, opts.Interval, sampling, opts.Logger)
	}
	if err != nil {
		return "", nil, err
	}
	if err := Write(profile, output, opts.Replace); err != nil {
		return "", nil, err
	}
	return output, profile, nil
}
