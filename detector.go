package main

import (
	"log/slog"

	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/detector"
	"github.com/camera-exporter/camera_exporter/detector/dnn"
)

// loadDetector loads the OpenCV detector a configuration describes; it is
// the camera.NewDetector of the exporter.
func loadDetector(cfg *config.Detector, logger *slog.Logger) (detector.Detector, error) {
	d, err := dnn.New(cfg.Options(), logger)
	if err != nil {
		return nil, err // not a nil *dnn.Detector in a non-nil interface
	}
	return d, nil
}
