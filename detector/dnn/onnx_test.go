package dnn

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/camera-exporter/camera_exporter/detector"
	"github.com/camera-exporter/camera_exporter/detector/onnx"
	"github.com/camera-exporter/camera_exporter/detector/onnx/onnxpb"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
)

// edited writes a copy of the ONNX model at path, changed by edit.
func edited(t testing.TB, path string, edit func(*onnxpb.ModelProto)) string {
	t.Helper()
	m, err := onnx.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	edit(m.Proto)
	b, err := proto.Marshal(m.Proto)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), filepath.Base(path))
	if err := os.WriteFile(out, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// withMetadata sets the metadata key to value, or removes it if value is "".
func withMetadata(key, value string) func(*onnxpb.ModelProto) {
	return func(m *onnxpb.ModelProto) {
		m.MetadataProps = slices.DeleteFunc(m.MetadataProps, func(p *onnxpb.StringStringEntryProto) bool { return p.GetKey() == key })
		if value != "" {
			m.MetadataProps = append(m.MetadataProps, &onnxpb.StringStringEntryProto{Key: proto.String(key), Value: proto.String(value)})
		}
	}
}

// TestONNXMetadata checks what the model's metadata gives and what the
// options may override: labels and the input size.
func TestONNXMetadata(t *testing.T) {
	models := testutil.YOLOPatternModels(t, "yolov8-o12-folded-320-c2", "yolov5-o12-folded-320-c2", "yolov5-o12-traced-320-c2", "yolov10-o12-folded-320-c2")
	v8, v5 := models["yolov8-o12-folded-320-c2"], models["yolov5-o12-folded-320-c2"]
	noMetadata := edited(t, v8, func(m *onnxpb.ModelProto) { m.MetadataProps = nil })

	for _, tc := range []struct {
		name   string
		opts   detector.Options
		labels []string
		layout detector.Layout
	}{
		{"model alone", detector.Options{Model: v8}, []string{"person", "helmet"}, detector.LayoutYOLOv8},
		{"YOLOv5 model alone", detector.Options{Model: v5}, []string{"person", "helmet"}, detector.LayoutYOLOv5},
		{"labels override names", detector.Options{Model: v8, Labels: []string{"worker", "hard hat"}}, []string{"worker", "hard hat"}, detector.LayoutYOLOv8},
		{"same input size", detector.Options{Model: v8, InputWidth: 320, InputHeight: 320}, []string{"person", "helmet"}, detector.LayoutYOLOv8},
		{"no metadata: labels given, the input's shape", detector.Options{Model: noMetadata, Labels: []string{"a", "b"}}, []string{"a", "b"}, detector.LayoutYOLOv8},
		{"layout yolov8 set", detector.Options{Model: v8, Layout: detector.LayoutYOLOv8}, []string{"person", "helmet"}, detector.LayoutYOLOv8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDetector(t, tc.opts)
			if info := d.Info(); info.InputWidth != 320 || info.InputHeight != 320 || info.Layout != tc.layout {
				t.Errorf("info %+v, want %s at 320x320", info, tc.layout)
			}
			if !slices.Equal(d.Labels(), tc.labels) {
				t.Errorf("labels %q, want %q", d.Labels(), tc.labels)
			}
		})
	}

	for _, tc := range []struct {
		name string
		opts detector.Options
		want string
	}{
		{"labels of another count", detector.Options{Model: v8, Labels: []string{"person"}},
			"the labels name 1 classes, but the model's metadata names 2 (names)"},
		{"another input size", detector.Options{Model: v8, InputWidth: 416, InputHeight: 416},
			"input size 416x416, but the model's metadata (imgsz) says 320x320"},
		{"another input size than the input's", detector.Options{Model: noMetadata, Labels: []string{"a", "b"}, InputWidth: 640, InputHeight: 640},
			`input size 640x640, but the model's input "images" [1 3 320 320] says 320x320`},
		{"no names, no labels", detector.Options{Model: noMetadata},
			"no labels: the model's metadata names no classes (names); give a labels file"},
		{"head of other classes", detector.Options{Model: edited(t, v8, withMetadata("names", "{0: 'person'}"))},
			"its detection head has 2 classes, but the model's metadata (names) names 1"},
		{"labels of another count than the head's", detector.Options{Model: noMetadata, Labels: []string{"a"}},
			"its detection head has 2 classes, but the labels name 1"},
		{"segmentation", detector.Options{Model: edited(t, v8, withMetadata("task", "segment"))},
			`a segment model (metadata task "segment"): only detection models (task detect) are supported`},
		{"pose", detector.Options{Model: edited(t, v8, withMetadata("task", "pose"))},
			`a pose model (metadata task "pose")`},
		{"names that do not parse", detector.Options{Model: edited(t, v8, withMetadata("names", "{0: 'person', 1: helmet}"))},
			`model metadata names = "{0: 'person', 1: helmet}"`},
		{"imgsz that does not parse", detector.Options{Model: edited(t, v8, withMetadata("imgsz", "[320, 'x']"))},
			`model metadata imgsz = "[320, 'x']"`},
		{"YOLOv10", detector.Options{Model: models["yolov10-o12-folded-320-c2"]},
			`an NMS-free end-to-end head (YOLOv10, or an export with nms=True) cannot run on OpenCV 4.6: its graph needs TopK node "/head/TopK"`},
		// As ultralytics/yolov5 exports with --dynamic.
		{"YOLOv5 with its grid computed in the graph", detector.Options{Model: models["yolov5-o12-traced-320-c2"]},
			"Node [Expand@ai.onnx]:(onnx_node!/head/Expand_2) parse error"},
		{"another layout", detector.Options{Model: v8, Layout: detector.LayoutYOLOv5},
			"layout yolov5: the model has a YOLOv8/YOLO11 head (layout yolov8)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opts, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.opts.Model) {
				t.Errorf("error %v, want one naming %s and saying %q", err, tc.opts.Model, tc.want)
			}
		})
	}
}

// TestONNXBadFiles checks that what is not a whole ONNX model fails at
// load, naming the file and what is wrong.
func TestONNXBadFiles(t *testing.T) {
	v8 := testutil.YOLOPatternModels(t, "yolov8-o12-folded-320-c2")["yolov8-o12-folded-320-c2"]
	whole, err := os.ReadFile(v8)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	jpeg, err := os.ReadFile(filepath.Join(shared, "images", "person.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, want string
	}{
		{"truncated", write("truncated.onnx", whole[:len(whole)/2]), "truncated, or not an ONNX model"},
		{"empty", write("empty.onnx", nil), "empty file, not an ONNX model"},
		{"a photo", write("photo.onnx", jpeg), "not an ONNX model"},
		{"an output no node defines", edited(t, v8, func(m *onnxpb.ModelProto) {
			m.Graph.Output[0].Name = proto.String("nothing")
		}), `graph output "nothing" is defined by no node, input or initializer`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(detector.Options{Model: tc.path}, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path) {
				t.Errorf("error %v, want one naming %s and saying %q", err, tc.path, tc.want)
			}
		})
	}
	// Named .onnx, so that they are read as ONNX models.
	for _, bad := range testutil.BadFiles(t, modelFile.Limit, "larger than") {
		t.Run(bad.Name, func(t *testing.T) {
			path := filepath.Join(dir, bad.Name+".onnx")
			if err := os.Symlink(bad.Path, path); err != nil {
				t.Fatal(err)
			}
			_, err := New(detector.Options{Model: path}, nil)
			if err == nil || !strings.Contains(err.Error(), bad.Err) {
				t.Errorf("error %v, want %q", err, bad.Err)
			}
		})
	}
}

// TestONNXRewriteLoggedOnce checks that the rewrite is logged once, what
// changed and why, however many networks are loaded, and that Info says it.
func TestONNXRewriteLoggedOnce(t *testing.T) {
	model := testutil.YOLOPatternModels(t, "yolo11-o17-folded-320-c2")["yolo11-o17-folded-320-c2"]
	var logs bytes.Buffer
	d, err := New(detector.Options{Model: model, Nets: 3}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if n := strings.Count(logs.String(), "rewrote the ONNX graph"); n != 1 {
		t.Errorf("the rewrite is logged %d times, want once:\n%s", n, logs.String())
	}
	// YOLO11 at opset 17 needs all three rewrites.
	for _, want := range []string{"cut the decoding of the YOLOv8/YOLO11 head", "by 3 Slices", "onto the second input of MatMul"} {
		if !strings.Contains(logs.String(), want) || !slices.ContainsFunc(d.Info().Rewrites, func(r string) bool { return strings.Contains(r, want) }) {
			t.Errorf("the log and Info().Rewrites do not say %q:\n%s\n%q", want, logs.String(), d.Info().Rewrites)
		}
	}
}
