package dnn

import (
	"fmt"
	"strings"

	"github.com/camera-exporter/camera_exporter/detector"
	"github.com/camera-exporter/camera_exporter/detector/onnx"
)

// onnxModel is an ONNX model as read, before its rewrite.
type onnxModel struct {
	*onnx.Model
	metadata onnx.Metadata
	// labelsFromModel: the labels are the metadata's names, for errors.
	labelsFromModel bool
}

// readONNX reads an ONNX model: its Ultralytics metadata fills in the
// labels and the input size that the options leave out, and must agree
// with those they give.
func (o *loader) readONNX() (onnxModel, error) {
	m, err := onnx.Read(o.Model)
	if err != nil {
		return onnxModel{}, err // onnx.Read's errors name the file.
	}
	md, err := m.Metadata()
	if err != nil {
		return onnxModel{}, o.errorf("%w", err)
	}
	if md.Task != "" && md.Task != "detect" {
		return onnxModel{}, o.errorf("a %s model (metadata task %q): only detection models (task detect) are supported", md.Task, md.Task)
	}
	model := onnxModel{Model: m, metadata: md, labelsFromModel: len(o.Labels) == 0}
	return model, o.fromMetadata(m, md)
}

// rewriteONNX rewrites the graph of a model that readONNX read, for
// OpenCV 4.6 (onnx.Model.ForOpenCV), once the options are valid, and keeps
// it, encoded, for every network to read.
func (o *loader) rewriteONNX(m onnxModel) error {
	rw, err := m.ForOpenCV(o.InputWidth, o.InputHeight, m.metadata.Stride)
	if err != nil {
		return o.errorf("%w", err)
	}
	if h := rw.Head; h != nil {
		if h.Classes != len(o.Labels) {
			source := "the labels name"
			if m.labelsFromModel {
				source = "the model's metadata (names) names"
			}
			return o.errorf("its detection head has %d classes, but %s %d", h.Classes, source, len(o.Labels))
		}
		if o.Layout != "" && o.Layout != detector.LayoutYOLOv8 {
			return o.errorf("layout %s: the model has a YOLOv8/YOLO11 head (layout %s)", o.Layout, detector.LayoutYOLOv8)
		}
		head, err := detector.NewHead(h.Bins, o.InputWidth, o.InputHeight, h.Strides)
		if err != nil {
			return o.errorf("%w", err)
		}
		o.Layout, o.head = detector.LayoutYOLOv8, &head
	}
	if o.onnx, err = m.Marshal(); err != nil {
		return o.errorf("writing the rewritten graph: %w", err)
	}
	o.rewrites = rw.Changes
	if len(rw.Changes) > 0 {
		o.logger.Info("rewrote the ONNX graph in memory so that OpenCV "+opencvVersion()+" can run it",
			"model", o.Model, "changes", strings.Join(rw.Changes, "; "))
	}
	return nil
}

// fromMetadata fills in the labels and the input size from the model's
// metadata, or its input's fixed shape, where the options leave them out;
// where they give them, the model must agree.
func (o *loader) fromMetadata(m *onnx.Model, md onnx.Metadata) error {
	switch {
	case len(o.Labels) == 0 && len(md.Names) == 0:
		return o.errorf("no labels: the model's metadata names no classes (names); give a labels file")
	case len(o.Labels) == 0:
		o.Labels = md.Names
	case len(md.Names) > 0 && len(md.Names) != len(o.Labels):
		return o.errorf("the labels name %d classes, but the model's metadata names %d (names)", len(o.Labels), len(md.Names))
	}
	w, h, from := md.Width, md.Height, "the model's metadata (imgsz)"
	if w == 0 {
		w, h, from = inputSize(m)
	}
	switch {
	case o.InputWidth == 0 && o.InputHeight == 0 && w == 0:
		return o.errorf("no input size: neither the model's metadata (imgsz) nor its input gives one; set input_size")
	case o.InputWidth == 0 && o.InputHeight == 0:
		o.InputWidth, o.InputHeight = w, h
	case w != 0 && (w != o.InputWidth || h != o.InputHeight):
		return o.errorf("input size %dx%d, but %s says %dx%d", o.InputWidth, o.InputHeight, from, w, h)
	}
	return nil
}

// inputSize is the size of the model's picture input if it is fixed:
// [1, 3, height, width]. Older exports list their initializers as inputs
// too: those are weights, not the picture.
func inputSize(m *onnx.Model) (w, h int, from string) {
	g := m.Graph()
	weights := map[string]bool{}
	for _, t := range g.Proto.GetInitializer() {
		weights[t.GetName()] = true
	}
	for _, in := range g.Proto.GetInput() {
		if weights[in.GetName()] {
			continue
		}
		shape, err := g.Shape(in.GetName())
		if err == nil && len(shape) == 4 && shape[1] == 3 && shape[2] > 0 && shape[3] > 0 {
			return int(shape[3]), int(shape[2]), fmt.Sprintf("the model's input %q %v", in.GetName(), shape)
		}
	}
	return 0, 0, ""
}
