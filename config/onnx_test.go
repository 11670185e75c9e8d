package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/camera-exporter/camera_exporter/detector"
	"github.com/camera-exporter/camera_exporter/detector/onnx"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
)

// editedModel writes a copy of the ONNX model at path with its metadata
// entry key set to value ("" removes it) and returns the copy's path.
func editedModel(t *testing.T, path, key, value string) string {
	t.Helper()
	m, err := onnx.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	props := m.Proto.MetadataProps[:0]
	for _, p := range m.Proto.MetadataProps {
		if p.GetKey() != key {
			props = append(props, p)
		} else if value != "" {
			p.Value = proto.String(value)
			props = append(props, p)
		}
	}
	m.Proto.MetadataProps = props
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	edited := filepath.Join(t.TempDir(), key+".onnx")
	if err := os.WriteFile(edited, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return edited
}

// TestONNXMetadata checks that an ONNX model with Ultralytics' metadata
// needs neither labels nor input_size, that the cameras' classes are
// checked against its class names, and that labels and input_size, where
// given, must agree with them; errors name the configuration file and
// line, and the files that disagree.
func TestONNXMetadata(t *testing.T) {
	const v8, v5 = "yolov8-o12-folded-320-c80", "yolov5-o12-folded-320-c2"
	models := testutil.YOLOPatternModels(t, v8, v5)
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	coco, err := os.ReadFile("../../shared/models/yolo-fastest-1.1/coco.names")
	if err != nil {
		t.Fatal(err)
	}
	var cocoNames []string
	for _, line := range strings.Split(string(coco), "\n") {
		if name := strings.TrimSpace(line); name != "" {
			cocoNames = append(cocoNames, name)
		}
	}
	cocoLabels := write("coco.names", string(coco))
	threeLabels := write("three.names", "person\ncar\ndog\n")
	model, err := os.ReadFile(models[v8])
	if err != nil {
		t.Fatal(err)
	}
	truncated := write("truncated.onnx", string(model[:len(model)/2]))
	text := write("text.onnx", "not a model\n")
	badNames := editedModel(t, models[v8], "names", "{0: 'person', 1: car}")
	noNames := editedModel(t, models[v8], "names", "")

	for _, tc := range []struct {
		name, detector, detect string
		err                    []string // after the file's path
		classes                []string // Classes(), of a valid configuration
		options                detector.Options
	}{
		{
			name:     "model only",
			detector: "  model: " + models[v8] + "\n",
			detect:   "[person, giraffe]",
			classes:  cocoNames,
			options:  detector.Options{Model: models[v8]},
		},
		{
			name:     "YOLOv5 without imgsz",
			detector: "  model: " + models[v5] + "\n",
			detect:   "[person, helmet]",
			classes:  []string{"person", "helmet"},
			options:  detector.Options{Model: models[v5]},
		},
		{
			name:     "labels and input size that agree",
			detector: "  model: " + models[v8] + "\n  labels: " + cocoLabels + "\n  input_size: 320\n",
			detect:   "[person]",
			classes:  cocoNames,
			options:  detector.Options{Model: models[v8], Labels: cocoNames, InputWidth: 320, InputHeight: 320},
		},
		{
			name:     "labels of a model whose metadata names no classes",
			detector: "  model: " + noNames + "\n  labels: " + threeLabels + "\n",
			detect:   "[dog]",
			classes:  []string{"person", "car", "dog"},
			options:  detector.Options{Model: noNames, Labels: []string{"person", "car", "dog"}},
		},
		{
			name:     "a class the model does not name",
			detector: "  model: " + models[v8] + "\n",
			detect:   "[person, persn]",
			err: []string{
				`:4: defaults: detect.classes: "persn" is not a class of the model ` + models[v8] + " (its metadata's names)",
				`:9: camera "gate": detect.classes: "persn" is not a class of the model ` + models[v8] + " (its metadata's names)",
			},
		},
		{
			name:     "labels of another class count",
			detector: "  model: " + models[v8] + "\n  labels: " + threeLabels + "\n",
			detect:   "[person]",
			err:      []string{":3: detector: labels: " + threeLabels + " names 3 classes, but the metadata of the model " + models[v8] + " names 80 (names)"},
		},
		{
			name:     "another input size",
			detector: "  model: " + models[v8] + "\n  input_size: 640\n",
			detect:   "[person]",
			err:      []string{":3: detector: input_size 640, but the metadata of the model " + models[v8] + " gives a 320x320 input (imgsz)"},
		},
		{
			name:     "input size 0",
			detector: "  model: " + models[v8] + "\n  input_size: 0\n",
			detect:   "[person]",
			err:      []string{":3: detector: input_size 0: must be the network's input width and height, 1 to 4096"},
		},
		{
			name:     "truncated model",
			detector: "  model: " + truncated + "\n",
			detect:   "[person]",
			err:      []string{":2: detector: model: " + truncated + ": truncated, or not an ONNX model: at byte "},
		},
		{
			name:     "not an ONNX model",
			detector: "  model: " + text + "\n",
			detect:   "[person]",
			err:      []string{":2: detector: model: " + text + ": truncated, or not an ONNX model: at byte "},
		},
		{
			name:     "names that do not parse",
			detector: "  model: " + badNames + "\n",
			detect:   "[person]",
			err:      []string{":2: detector: model: " + badNames + `: model metadata names = "{0: 'person', 1: car}": at byte 17: expected a quoted string`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := write("exporter.yml", "detector:\n"+tc.detector+
				"defaults:\n  detect:\n    classes: "+tc.detect+"\n"+
				"cameras:\n  - name: gate\n    url: rtsp://h/\n    detect:\n      classes: "+tc.detect+"\n")
			cfg, err := Load(path)
			if tc.err != nil {
				var lines []string
				for _, e := range tc.err {
					lines = append(lines, path+e)
				}
				if err == nil {
					t.Fatalf("no error, want\n%s", strings.Join(lines, "\n"))
				}
				got := strings.Split(err.Error(), "\n")
				if len(got) != len(lines) {
					t.Fatalf("got error\n%v\nwant\n%s", err, strings.Join(lines, "\n"))
				}
				for i := range got {
					if !strings.HasPrefix(got[i], lines[i]) {
						t.Errorf("got error\n%s\nwant\n%s", got[i], lines[i])
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			d := cfg.Detector
			if !slices.Equal(d.Classes(), tc.classes) {
				t.Errorf("classes = %q, want %q", d.Classes(), tc.classes)
			}
			// The loader reads what the configuration leaves out from
			// the model itself.
			want := tc.options
			want.SetDefaults()
			if o := d.Options(); o.Model != want.Model || !slices.Equal(o.Labels, want.Labels) ||
				o.InputWidth != want.InputWidth || o.InputHeight != want.InputHeight || o.Confidence != want.Confidence {
				t.Errorf("Options() = %+v, want %+v", o, want)
			}
		})
	}
}
