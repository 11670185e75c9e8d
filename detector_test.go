package main

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/detector"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
)

func TestLoadDetector(t *testing.T) {
	cfg, err := config.Parse([]byte(testutil.DetectorBlock(t, "")))
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	det, err := loadDetector(cfg.Detector, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	if info := det.Info(); info.Layout != detector.LayoutDarknet || info.InputWidth != 320 || info.Requested != detector.BackendCPU {
		t.Errorf("Info() = %+v, want a 320x320 darknet model on the CPU", info)
	}
	if labels := det.Labels(); len(labels) != 80 || labels[0] != "person" {
		t.Errorf("Labels() = %d labels starting %q, want the 80 COCO classes", len(labels), labels[0])
	}

	// A detector that fails to load is no detector, not a nil *dnn.Detector.
	det, err = loadDetector(&config.Detector{}, logger)
	if det != nil || err == nil || !strings.Contains(err.Error(), "missing model") {
		t.Errorf("loadDetector(empty) = %v, %v; want nil and an error", det, err)
	}
}
