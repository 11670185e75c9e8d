package main

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/detector"
)

// cocoModel is the real Yolo-Fastest COCO detector, shared by every
// checkout; never copied into the repository.
const cocoModel = "../shared/models/yolo-fastest-1.1"

// detectorBlock configures the Yolo-Fastest COCO model, with extra fields.
func detectorBlock(t testing.TB, extra string) string {
	t.Helper()
	dir, err := filepath.Abs(cocoModel)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`detector:
  model: %[1]s/yolo-fastest-1.1.weights
  config: %[1]s/yolo-fastest-1.1.cfg
  labels: %[1]s/coco.names
  input_size: 320
  confidence: 0.4
%[2]s`, dir, extra)
}

func TestLoadDetector(t *testing.T) {
	cfg, err := config.Parse([]byte(detectorBlock(t, "")))
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
