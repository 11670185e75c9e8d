package config

import (
	"bufio"
	"bytes"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/camera-exporter/camera_exporter/detector"
)

// LayoutAuto, the default Detector.Layout, infers the layout from the
// shapes of the model's outputs.
const LayoutAuto = "auto"

// Built-in detector defaults.
const (
	defaultConfidence   = 0.25
	defaultNMSThreshold = 0.45
	defaultNets         = 1
	maxInputSize        = 4096
	maxNets             = 64
)

var (
	backends = []string{detector.BackendCPU, detector.BackendCUDA, detector.BackendCUDAFP16}
	resizes  = []string{string(detector.ResizeLetterbox), string(detector.ResizeStretch)}
)

// Detector configures the object detector that analyzed frames go through.
// Load makes relative paths relative to the configuration file's directory.
type Detector struct {
	// Model is the weights file: .weights (Darknet), .onnx, .caffemodel...
	Model string `yaml:"model"`
	// Config is the network description of formats that keep it apart
	// from the weights: Darknet .cfg, Caffe .prototxt.
	Config string `yaml:"config,omitempty"`
	// Labels names the classes, one per line, line i naming class i.
	Labels string `yaml:"labels"`
	// Layout is how the model's outputs encode detections: LayoutAuto or
	// one of detector.Layouts.
	Layout string `yaml:"layout,omitempty"`
	// InputSize is the width and height of the network input.
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

	classes []string    // content of Labels
	files   []fileStamp // the model files as loaded, to notice replaced ones
}

// fileStamp identifies a version of a file well enough to notice that a
// reload must load it again.
type fileStamp struct {
	path    string
	size    int64
	modTime time.Time
}

// Classes returns the class names read from the labels file.
func (d *Detector) Classes() []string { return d.classes }

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
		slices.Equal(d.classes, o.classes) && slices.Equal(d.files, o.files)
}

func equalBools(a, b *bool) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
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
	if d.Layout == "" {
		d.Layout = LayoutAuto
	}
	if d.Confidence == 0 {
		d.Confidence = defaultConfidence
	}
	if d.NMSThreshold == 0 {
		d.NMSThreshold = defaultNMSThreshold
	}
	if d.Backend == "" {
		d.Backend = detector.BackendCPU
	}
	if d.Nets == 0 {
		d.Nets = defaultNets
	}
}

func (d *Detector) check(r *reporter) {
	if d.Model == "" {
		r.errorf("", "missing model")
	}
	if d.Labels == "" {
		r.errorf("", "missing labels")
	}
	layouts := []string{LayoutAuto}
	for _, l := range detector.Layouts {
		layouts = append(layouts, string(l))
	}
	if d.Layout != "" && !slices.Contains(layouts, d.Layout) {
		r.errorf("layout", "layout %q: must be one of %s", d.Layout, strings.Join(layouts, ", "))
	}
	if d.InputSize <= 0 || d.InputSize > maxInputSize {
		r.errorf("input_size", "input_size %d: must be the network's input width and height, 1 to %d (e.g. 320 for Yolo-Fastest, 640 for YOLOv8)", d.InputSize, maxInputSize)
	}
	if d.Resize != "" && !slices.Contains(resizes, d.Resize) {
		r.errorf("resize", "resize %q: must be one of %s", d.Resize, strings.Join(resizes, ", "))
	}
	if !(d.Scale >= 0) || math.IsInf(d.Scale, 0) || (r.has("scale") && d.Scale == 0) {
		r.errorf("scale", "scale %v: must be greater than 0", d.Scale)
	}
	if r.has("mean") && len(d.Mean) != 1 && len(d.Mean) != 3 {
		r.errorf("mean", "mean: must be one value, or three in B, G, R order")
	}
	// Negated so that NaN is rejected too; 0 is rejected only when written.
	for field, v := range map[string]float64{"confidence": d.Confidence, "nms_threshold": d.NMSThreshold} {
		if !(v >= 0 && v <= 1) || (r.has(field) && v == 0) {
			r.errorf(field, "%s %v: must be greater than 0 and at most 1", field, v)
		}
	}
	if d.Backend != "" && !slices.Contains(backends, d.Backend) {
		r.errorf("backend", "backend %q: must be one of %s", d.Backend, strings.Join(backends, ", "))
	}
	if d.Nets < 0 || d.Nets > maxNets || (r.has("nets") && d.Nets == 0) {
		r.errorf("nets", "nets %d: must be 1 to %d", d.Nets, maxNets)
	}
}

// stampFiles records the model files' sizes and times; a missing one is
// an error here already, naming the path.
func (d *Detector) stampFiles(r *reporter) {
	for field, path := range map[string]string{"model": d.Model, "config": d.Config} {
		if path == "" {
			continue
		}
		fi, err := os.Stat(path)
		if err != nil {
			r.errorf(field, "%s: %v", field, err)
			continue
		}
		d.files = append(d.files, fileStamp{path: path, size: fi.Size(), modTime: fi.ModTime()})
	}
	slices.SortFunc(d.files, func(a, b fileStamp) int { return strings.Compare(a.path, b.path) })
}

// readLabels reads the class names: one per line, blank lines at the end
// ignored, blank lines elsewhere rejected since they would shift classes.
func (d *Detector) readLabels(r *reporter) {
	if d.Labels == "" {
		return
	}
	b, err := os.ReadFile(d.Labels)
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
	if d == nil || d.classes == nil {
		return
	}
	for _, class := range o.Classes {
		if !slices.Contains(d.classes, class) {
			r.errorf("detect", "detect.classes: %q is not a class of %s", class, d.Labels)
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
