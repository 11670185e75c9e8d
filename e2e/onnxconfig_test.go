package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/camera-exporter/camera_exporter/detector"
	"github.com/camera-exporter/camera_exporter/detector/dnn"
	"github.com/camera-exporter/camera_exporter/detector/onnx"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
)

// withMetadata writes to dir/name a copy of the ONNX model at path with
// its metadata entry key set to value, and returns the copy's path.
func withMetadata(t *testing.T, path, dir, name, key, value string) string {
	t.Helper()
	m, err := onnx.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Proto.GetMetadataProps() {
		if p.GetKey() == key {
			p.Value = proto.String(value)
		}
	}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	copied := filepath.Join(dir, name)
	if err := os.WriteFile(copied, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return copied
}

// TestONNXModelAlone checks that a configuration naming an Ultralytics
// ONNX model alone passes --config.check, which says how the loader
// rewrote its graph, and that bad ONNX files fail the check and a reload,
// naming the file and what is wrong, while the running detector stays.
func TestONNXModelAlone(t *testing.T) {
	const spec = "yolov8-o12-folded-320-c80"
	good := testutil.YOLOPatternModels(t, spec)[spec]
	d, err := dnn.New(detector.Options{Model: good}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rewrites := d.Info().Rewrites
	d.Close()
	if len(rewrites) == 0 {
		t.Fatal("the loader made no rewrites of a YOLOv8 export")
	}

	dir := t.TempDir()
	model, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.onnx")
	text := filepath.Join(dir, "text.onnx")
	for path, data := range map[string][]byte{truncated: model[:len(model)/2], text: []byte("model: yolov8n.pt\n")} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The model file's metadata is read with the configuration: what is
	// wrong with it is an error of the configuration's line, before any
	// model loads. The loader refuses a model for another task.
	bad := []struct {
		name, model string
		want        string
	}{
		{"truncated", truncated, ":2: detector: model: " + truncated + ": truncated, or not an ONNX model: at byte "},
		{"not ONNX", text, ":2: detector: model: " + text + ": truncated, or not an ONNX model: at byte "},
		{"names that do not parse", withMetadata(t, good, dir, "bad-names.onnx", "names", "{0: 'person', 1: car}"),
			":2: detector: model: " + filepath.Join(dir, "bad-names.onnx") + `: model metadata names = "{0: 'person', 1: car}": at byte 17: expected a quoted string`},
		{"segmentation", withMetadata(t, good, dir, "segment.onnx", "task", "segment"),
			"model " + filepath.Join(dir, "segment.onnx") + `: a segment model (metadata task "segment"): only detection models (task detect) are supported`},
	}
	configOf := func(model string) string {
		return "detector:\n  model: " + model + "\ndefaults:\n  detect:\n    classes: [person]\ncameras: []\n"
	}

	t.Run("config.check", func(t *testing.T) {
		cfg := filepath.Join(t.TempDir(), "exporter.yml")
		if err := os.WriteFile(cfg, []byte(configOf(good)), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(binary, "--config.check", "--config.file="+cfg).Output() // stdout only
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		want := []string{cfg + ": valid, 0 cameras, detector " + good + " loads: yolov8 layout, 320x320 input, 80 classes, opencv backend on cpu"}
		for _, r := range rewrites {
			want = append(want, "  rewrote: "+r)
		}
		if got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n"); !slices.Equal(got, want) {
			t.Errorf("output\n%s\nwant\n%s", out, strings.Join(want, "\n"))
		}

		for _, tc := range bad {
			if err := os.WriteFile(cfg, []byte(configOf(tc.model)), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(binary, "--config.check", "--config.file="+cfg).CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Errorf("%s: %v, want exit code 1\n%s", tc.name, err, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("%s: output lacks %q:\n%s", tc.name, tc.want, out)
			}
		}
	})

	t.Run("reload", func(t *testing.T) {
		e := startExporter(t, configOf(good))
		info := regexp.MustCompile(`(?m)^camera_detector_info\{.*$`)
		before, err := e.get("/metrics", nil)
		if err != nil {
			t.Fatal(err)
		}
		want := info.FindString(before)
		if !strings.Contains(want, `layout="yolov8",model="`+spec+`.onnx"`) || !strings.Contains(want, `input_size="320x320"`) {
			t.Fatalf("camera_detector_info of the model alone: %q", want)
		}
		for _, tc := range bad {
			os.WriteFile(e.config, []byte(configOf(tc.model)), 0o600) //nolint:errcheck // read back by the reload
			err := postReload(e)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: reload: %v, want an error with %q", tc.name, err, tc.want)
			}
			if m, _ := e.get("/metrics", nil); info.FindString(m) != want {
				t.Errorf("%s: after the failed reload, %q; want the running detector's %q", tc.name, info.FindString(m), want)
			}
		}
	})
}
