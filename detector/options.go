package detector

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
)

// Defaults and limits of Options.
const (
	DefaultConfidence   = 0.25
	DefaultNMSThreshold = 0.45
	DefaultNets         = 1
	MaxInputSize        = 4096 // largest input width or height
	MaxNets             = 64
)

var (
	// Backends lists the known backends.
	Backends = []string{BackendCPU, BackendCUDA, BackendCUDAFP16}
	// Resizes lists the ways to fit a picture into a network input.
	Resizes = []Resize{ResizeLetterbox, ResizeStretch}
)

// Options describe a detector: the model, how a picture becomes its input
// and how its outputs become detections, and what it runs on. Zero values
// mean the default noted; SetDefaults fills in those that do not depend on
// the model.
type Options struct {
	Model  string // weights: .weights (Darknet), .onnx, .caffemodel, .pb...
	Config string // Darknet .cfg, Caffe .prototxt, TF .pbtxt; "" for ONNX
	// Labels are the class names, index = class id: required, but for an
	// ONNX model whose metadata names its classes.
	Labels []string
	// Layout is how the outputs encode detections; "" infers it from the
	// shapes of the outputs (DetectLayout).
	Layout Layout
	// InputWidth and InputHeight are the network's input size, 1 to
	// MaxInputSize: required, but for an ONNX model whose metadata or
	// input gives it.
	InputWidth, InputHeight int
	// Resize, Scale, Mean and SwapRB override how a picture becomes the
	// network input; unset, they are what the layout's models expect
	// (DefaultPreprocess).
	Resize Resize    // "" = the layout's
	Scale  float64   // 0 = the layout's
	Mean   []float64 // subtracted: one value for every channel, or B, G, R; empty = the layout's
	SwapRB *bool     // nil = the layout's
	// Confidence is the lowest confidence of a detection that counts;
	// 0 = DefaultConfidence.
	Confidence float64
	// NMSThreshold is the overlap (IoU) above which the weaker of two boxes
	// of the same class is dropped; 0 = DefaultNMSThreshold.
	NMSThreshold float64
	// Backend is one of Backends; "" = BackendCPU.
	Backend string
	// AllowCPUFallback runs the networks on the CPU when CUDA was asked
	// for but is unavailable, instead of failing.
	AllowCPUFallback bool
	// Nets is the number of networks loaded, hence of detections that can
	// run at the same time; 0 = DefaultNets.
	Nets int
}

// SetDefaults fills in the defaults of the zero fields that have one
// independent of the model: confidence, NMS threshold, backend and nets.
func (o *Options) SetDefaults() {
	if o.Confidence == 0 {
		o.Confidence = DefaultConfidence
	}
	if o.NMSThreshold == 0 {
		o.NMSThreshold = DefaultNMSThreshold
	}
	if o.Backend == "" {
		o.Backend = BackendCPU
	}
	if o.Nets == 0 {
		o.Nets = DefaultNets
	}
}

// FieldError is a problem with one setting of Options.
type FieldError struct {
	// Field names the setting as the configuration file does: model,
	// labels, layout, input_size, resize, scale, mean, confidence,
	// nms_threshold, backend or nets.
	Field string
	// Msg says what is wrong, naming the field: "nets 0: must be 1 to 64".
	Msg string
}

func (e *FieldError) Error() string { return e.Msg }

// Validate reports every problem of the options that can be seen without
// reading the model, joined, each a *FieldError. Zero values that mean a
// default are valid, so o may be validated before or after SetDefaults.
func (o *Options) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if o.Model == "" {
		add("model", "missing model")
	}
	// An ONNX model may leave these to its metadata, which the loader reads.
	fromModel := o.ONNX()
	if len(o.Labels) == 0 && !fromModel {
		add("labels", "missing labels")
	}
	if o.Layout != "" && !slices.Contains(Layouts, o.Layout) {
		add("layout", "layout %q: must be one of %s", o.Layout, join(Layouts))
	}
	if w, h := o.InputWidth, o.InputHeight; (w != 0 || h != 0 || !fromModel) && (w < 1 || w > MaxInputSize || h < 1 || h > MaxInputSize) {
		if w == h {
			add("input_size", "input_size %d: must be the network's input width and height, 1 to %d (e.g. 320 for Yolo-Fastest, 640 for YOLOv8)", w, MaxInputSize)
		} else {
			add("input_size", "input_size %dx%d: width and height must be 1 to %d", w, h, MaxInputSize)
		}
	}
	if o.Resize != "" && !slices.Contains(Resizes, o.Resize) {
		add("resize", "resize %q: must be one of %s", o.Resize, join(Resizes))
	}
	// Negated so that NaN is rejected too.
	if !(o.Scale >= 0) || math.IsInf(o.Scale, 0) {
		add("scale", "scale %v: must be greater than 0", o.Scale)
	}
	if n := len(o.Mean); n != 0 && n != 1 && n != 3 {
		add("mean", "mean: must be one value, or three in B, G, R order")
	}
	if !(o.Confidence >= 0 && o.Confidence <= 1) {
		add("confidence", "confidence %v: must be greater than 0 and at most 1", o.Confidence)
	}
	if !(o.NMSThreshold >= 0 && o.NMSThreshold <= 1) {
		add("nms_threshold", "nms_threshold %v: must be greater than 0 and at most 1", o.NMSThreshold)
	}
	if o.Backend != "" && !slices.Contains(Backends, o.Backend) {
		add("backend", "backend %q: must be one of %s", o.Backend, join(Backends))
	}
	if o.Nets < 0 || o.Nets > MaxNets {
		add("nets", "nets %d: must be 1 to %d", o.Nets, MaxNets)
	}
	return errors.Join(errs...)
}

// ONNX reports whether the model is an ONNX file, which OpenCV, like the
// loader, tells by its extension.
func (o *Options) ONNX() bool {
	return strings.EqualFold(filepath.Ext(o.Model), ".onnx")
}

// Preprocess is the default preprocessing of the options' layout (Darknet's
// while it is to be inferred) with the options' overrides.
func (o *Options) Preprocess() Preprocess {
	p := DefaultPreprocess(o.Layout)
	if o.Resize != "" {
		p.Resize = o.Resize
	}
	if o.Scale != 0 {
		p.Scale = o.Scale
	}
	switch len(o.Mean) {
	case 1:
		p.Mean = [3]float64{o.Mean[0], o.Mean[0], o.Mean[0]}
	case 3:
		p.Mean = [3]float64(o.Mean)
	}
	if o.SwapRB != nil {
		p.SwapRB = *o.SwapRB
	}
	return p
}

// join lists values for a message: "cpu, cuda, cuda_fp16".
func join[S ~string](values []S) string {
	s := make([]string, len(values))
	for i, v := range values {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}
