package config

import (
	"bufio"
	"bytes"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/camera-exporter/camera_exporter/detector"
	"github.com/camera-exporter/camera_exporter/detector/onnx"
	"github.com/camera-exporter/camera_exporter/internal/boundedfile"
)

// LayoutAuto, the default Detector.Layout, infers the layout from the
// shapes of the model's outputs.
const LayoutAuto = "auto"

// Detector configures the object detector that analyzed frames go through.
// Load makes relative paths relative to the configuration file's directory.
type Detector struct {
	// Model is the weights file: .weights (Darknet), .onnx, .caffemodel...
	Model string `yaml:"model"`
	// Config is the network description of formats that keep it apart
	// from the weights: Darknet .cfg, Caffe .prototxt.
	Config string `yaml:"config,omitempty"`
	// Labels names the classes, one per line, line i naming class i.
	// Optional for an ONNX model whose metadata names its classes.
	Labels string `yaml:"labels"`
	// Layout is how the model's outputs encode detections: LayoutAuto or
	// one of detector.Layouts.
	Layout string `yaml:"layout,omitempty"`
	// InputSize is the width and height of the network input. Optional
	// for an ONNX model whose metadata or input gives it.
	InputSize int `yaml:"input_size"`
	// Resize, Scale, Mean and SwapRB override how a picture becomes the
	// network input; unset, they are what the layout's models expect.
	Resize string    `yaml:"resize,omitempty"`
	Scale  float64   `yaml:"scale,omitempty"`
	Mean   []float64 `yaml:"mean,omitempty"`
	SwapRB *bool     `yaml:"swap_rb,omitempty"`
	// Confidence is the lowest confidence of a detection that counts.
	Confidence float64 `yaml:"confidence,omitempty"`
	// NMSThreshold is the overlap (IoU) above which the weaker of two
	// boxes of the same class is dropped.
	NMSThreshold float64 `yaml:"nms_threshold,omitempty"`
	// Backend is detector.BackendCPU, BackendCUDA or BackendCUDAFP16.
	Backend string `yaml:"backend,omitempty"`
	// AllowCPUFallback runs the model on the CPU when the CUDA backend
	// was asked for but is unavailable, instead of refusing to start.
	AllowCPUFallback bool `yaml:"allow_cpu_fallback,omitempty"`
	// Nets is the number of networks loaded, and so of frames detected at
	// the same time.
	Nets int `yaml:"nets,omitempty"`

	classes      []string    // content of Labels
	modelClasses []string    // the class names in an ONNX model's metadata
	files        []fileStamp // the model files as loaded, to notice replaced ones
}

// fileStamp identifies a version of a file well enough to notice that a
// reload must load it again.
type fileStamp struct {
	path    string
	size    int64
	modTime time.Time
}

// Classes returns the class names: those of the labels file, or else
// those that an ONNX model's metadata gives.
func (d *Detector) Classes() []string {
	if d.Labels != "" {
		return d.classes
	}
	return d.modelClasses
}

// Equal reports whether d and o describe the same detector, files
// included, so that a reload can keep the loaded networks.
func (d *Detector) Equal(o *Detector) bool {
	if d == nil || o == nil {
		return d == o
	}
	return d.Model == o.Model && d.Config == o.Config && d.Labels == o.Labels &&
		d.Layout == o.Layout && d.InputSize == o.InputSize && d.Resize == o.Resize &&
		d.Scale == o.Scale && slices.Equal(d.Mean, o.Mean) && equalBools(d.SwapRB, o.SwapRB) &&
		d.Confidence == o.Confidence && d.NMSThreshold == o.NMSThreshold &&
		d.Backend == o.Backend && d.AllowCPUFallback == o.AllowCPUFallback && d.Nets == o.Nets &&
		slices.Equal(d.classes, o.classes) && slices.Equal(d.modelClasses, o.modelClasses) &&
		slices.Equal(d.files, o.files)
}

func equalBools(a, b *bool) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// Options are the detector's settings as package detector takes them, so
// that loading a detector is dnn.New(d.Options(), logger): layout auto is
// "" (inferred), the input is InputSize square, the labels are the classes
// read from the labels file, the mean is as written. What an ONNX model's
// metadata gives and the configuration leaves out stays out: the loader
// reads it from the model it loads.
func (d *Detector) Options() detector.Options {
	o := detector.Options{
		Model:            d.Model,
		Config:           d.Config,
		Labels:           slices.Clone(d.classes),
		InputWidth:       d.InputSize,
		InputHeight:      d.InputSize,
		Resize:           detector.Resize(d.Resize),
		Scale:            d.Scale,
		Mean:             slices.Clone(d.Mean),
		Confidence:       d.Confidence,
		NMSThreshold:     d.NMSThreshold,
		Backend:          d.Backend,
		AllowCPUFallback: d.AllowCPUFallback,
		Nets:             d.Nets,
	}
	if d.Layout != LayoutAuto {
		o.Layout = detector.Layout(d.Layout)
	}
	if d.SwapRB != nil {
		swapRB := *d.SwapRB
		o.SwapRB = &swapRB
	}
	return o
}

// resolve validates d, makes its paths absolute to dir, reads the labels
// and fills in defaults.
func (d *Detector) resolve(r *reporter, dir string) {
	d.check(r)
	for _, p := range []*string{&d.Model, &d.Config, &d.Labels} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	d.stampFiles(r)
	d.readLabels(r)
	d.readModelMetadata(r)
	d.fill()
}

// check reports what is wrong with the settings. Package detector knows
// the ranges and the allowed values; config adds what only the YAML tells.
func (d *Detector) check(r *reporter) {
	o := d.Options()
	for _, err := range unjoin(o.Validate()) {
		var fe *detector.FieldError
		if !errors.As(err, &fe) {
			r.errorf("", "%v", err)
			continue
		}
		switch fe.Field {
		case "labels":
			// The options' labels are the classes, not read yet:
			// readLabels reports what is wrong with the file.
			if d.Labels != "" {
				continue
			}
		case "layout":
			// "auto" is the configuration's word for an inferred layout.
			layouts := []string{LayoutAuto}
			for _, l := range detector.Layouts {
				layouts = append(layouts, string(l))
			}
			r.errorf("layout", "layout %q: must be one of %s", d.Layout, strings.Join(layouts, ", "))
			continue
		}
		r.errorf(fe.Field, "%s", fe.Msg)
	}
	// Decoding cannot tell "nets: 0" or "mean: []" from a field left out,
	// the YAML can: only leaving a field out gives the default.
	if r.has("scale") && d.Scale == 0 {
		r.errorf("scale", "scale 0: must be greater than 0")
	}
	if r.has("mean") && len(d.Mean) == 0 {
		r.errorf("mean", "mean: must be one value, or three in B, G, R order")
	}
	for _, f := range []struct {
		name  string
		value float64
	}{{"confidence", d.Confidence}, {"nms_threshold", d.NMSThreshold}} {
		if r.has(f.name) && f.value == 0 {
			r.errorf(f.name, "%s 0: must be greater than 0 and at most 1", f.name)
		}
	}
	// For an ONNX model, 0 is "from the model": only leaving it out says so.
	if r.has("input_size") && d.InputSize == 0 && o.ONNX() {
		r.errorf("input_size", "input_size 0: must be the network's input width and height, 1 to %d", detector.MaxInputSize)
	}
	if r.has("nets") && d.Nets == 0 {
		r.errorf("nets", "nets 0: must be 1 to %d", detector.MaxNets)
	}
}

// unjoin returns the errors that errors.Join joined into err.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err != nil {
		return []error{err}
	}
	return nil
}

// fill fills in the defaults of the fields left out, so that the loaded
// configuration shows what the detector runs with.
func (d *Detector) fill() {
	if d.Layout == "" {
		d.Layout = LayoutAuto
	}
	o := d.Options()
	o.SetDefaults()
	d.Confidence, d.NMSThreshold, d.Backend, d.Nets = o.Confidence, o.NMSThreshold, o.Backend, o.Nets
}

// stampFiles checks the model files and records their sizes and times; a
// missing one is an error here already, naming the path. OpenCV opens them
// again by path: a file replaced in between escapes the check.
func (d *Detector) stampFiles(r *reporter) {
	weights, description := modelWeights, modelDescription
	// OpenCV's readNet takes the weights and the description in either
	// order, as "model: yolo.cfg, config: yolo.weights".
	if slices.Contains(descriptionExtensions, filepath.Ext(d.Model)) {
		weights, description = description, weights
	}
	for _, f := range []struct {
		field string
		path  string
		kind  boundedfile.Kind
	}{{"model", d.Model, weights}, {"config", d.Config, description}} {
		if f.path == "" {
			continue
		}
		fi, err := r.statFile(f.path, f.kind)
		if err != nil {
			r.errorf(f.field, "%s: %v", f.field, err)
			continue
		}
		d.files = append(d.files, fileStamp{path: f.path, size: fi.Size(), modTime: fi.ModTime()})
	}
	slices.SortFunc(d.files, func(a, b fileStamp) int { return strings.Compare(a.path, b.path) })
}

// descriptionExtensions are those of the network descriptions that OpenCV
// reads: Darknet, Caffe, TensorFlow text and OpenVINO.
var descriptionExtensions = []string{".cfg", ".prototxt", ".pbtxt", ".xml"}

// readLabels reads the class names: one per line, blank lines at the end
// ignored, blank lines elsewhere rejected since they would shift classes.
func (d *Detector) readLabels(r *reporter) {
	if d.Labels == "" {
		return
	}
	b, err := r.readFile(d.Labels, labelsFile)
	if err != nil {
		r.errorf("labels", "labels: %v", err)
		return
	}
	var classes []string
	blank := 0 // line of the first blank line not yet followed by a name
	sc := bufio.NewScanner(bytes.NewReader(b))
	for line := 1; sc.Scan(); line++ {
		name := strings.TrimSpace(sc.Text())
		if name == "" {
			if blank == 0 {
				blank = line
			}
			continue
		}
		if blank != 0 {
			r.errorf("labels", "labels: %s:%d: blank line; line i must name class i-1", d.Labels, blank)
			return
		}
		classes = append(classes, name)
	}
	if err := sc.Err(); err != nil {
		r.errorf("labels", "labels: %s: %v", d.Labels, err)
		return
	}
	if len(classes) == 0 {
		r.errorf("labels", "labels: %s names no classes", d.Labels)
		return
	}
	d.classes = classes
}

// readModelMetadata reads the class names and the input size that an
// ONNX model's metadata gives, without reading its graph, so that the
// cameras' classes are checked at load; labels and input_size, where
// given, must agree with them.
func (d *Detector) readModelMetadata(r *reporter) {
	o := d.Options()
	if !o.ONNX() || !slices.ContainsFunc(d.files, func(f fileStamp) bool { return f.path == d.Model }) {
		return // Not ONNX, or stampFiles reported what is wrong with the file.
	}
	done := r.progress.reading("model metadata", d.Model)
	md, err := onnx.ReadMetadata(d.Model)
	done()
	if err != nil {
		r.errorf("model", "model: %v", err) // ReadMetadata's errors name the path.
		return
	}
	d.modelClasses = md.Names
	if d.classes != nil && md.Names != nil && len(d.classes) != len(md.Names) {
		r.errorf("labels", "labels: %s names %d classes, but the metadata of the model %s names %d (names)",
			d.Labels, len(d.classes), d.Model, len(md.Names))
	}
	if d.InputSize != 0 && md.Width != 0 && (d.InputSize != md.Width || d.InputSize != md.Height) {
		r.errorf("input_size", "input_size %d, but the metadata of the model %s gives a %dx%d input (imgsz)",
			d.InputSize, d.Model, md.Width, md.Height)
	}
}

// DetectOptions choose what a camera's frames are checked for.
type DetectOptions struct {
	// Enabled runs the camera's frames through the detector, when one is
	// configured. Built-in default: true.
	Enabled *bool `yaml:"enabled,omitempty"`
	// Classes are the classes to count; empty counts all.
	Classes []string `yaml:"classes,omitempty"`
}

func (o DetectOptions) check(r *reporter) {
	seen := map[string]bool{}
	for _, class := range o.Classes {
		switch {
		case strings.TrimSpace(class) == "":
			r.errorf("detect", "detect.classes: empty class name")
		case seen[class]:
			r.errorf("detect", "detect.classes: %q listed twice", class)
		}
		seen[class] = true
	}
}

// checkClasses reports classes the detector does not know.
func (o DetectOptions) checkClasses(r *reporter, d *Detector) {
	if d == nil || d.Classes() == nil {
		return
	}
	source := d.Labels
	if source == "" {
		source = "the model " + d.Model + " (its metadata's names)"
	}
	for _, class := range o.Classes {
		if !slices.Contains(d.Classes(), class) {
			r.errorf("detect", "detect.classes: %q is not a class of %s", class, source)
		}
	}
}

func (o *DetectOptions) fill(d DetectOptions) {
	if o.Enabled == nil {
		enabled := *d.Enabled
		o.Enabled = &enabled
	}
	if o.Classes == nil {
		o.Classes = slices.Clone(d.Classes)
	}
}

func (o DetectOptions) equal(p DetectOptions) bool {
	return equalBools(o.Enabled, p.Enabled) && slices.Equal(o.Classes, p.Classes)
}
