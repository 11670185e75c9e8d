package dnn

import (
	"log/slog"

	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/detector"
)

// Load creates the Detector a configuration describes; its type is
// camera.NewDetector.
func Load(cfg *config.Detector, logger *slog.Logger) (detector.Detector, error) {
	opts := Options{
		Model:            cfg.Model,
		Config:           cfg.Config,
		Labels:           cfg.Classes(),
		InputWidth:       cfg.InputSize,
		InputHeight:      cfg.InputSize,
		Resize:           detector.Resize(cfg.Resize),
		Scale:            cfg.Scale,
		SwapRB:           cfg.SwapRB,
		Confidence:       float32(cfg.Confidence),
		NMS:              float32(cfg.NMSThreshold),
		Backend:          cfg.Backend,
		AllowCPUFallback: cfg.AllowCPUFallback,
		Nets:             cfg.Nets,
		Logger:           logger,
	}
	if cfg.Layout != config.LayoutAuto {
		opts.Layout = detector.Layout(cfg.Layout)
	}
	switch len(cfg.Mean) {
	case 1:
		opts.Mean = &[3]float64{cfg.Mean[0], cfg.Mean[0], cfg.Mean[0]}
	case 3:
		opts.Mean = &[3]float64{cfg.Mean[0], cfg.Mean[1], cfg.Mean[2]}
	}
	d, err := New(opts)
	if err != nil {
		return nil, err // not a nil *Detector in a non-nil interface
	}
	return d, nil
}
