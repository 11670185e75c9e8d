package dnn

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/camera-exporter/camera_exporter/detector"
)

// Options configure a Detector. Zero values mean the default noted.
type Options struct {
	Model  string   // weights path (.weights Darknet, .onnx, .caffemodel, .pb, ...)
	Config string   // Darknet .cfg, Caffe .prototxt, TF .pbtxt; "" for ONNX
	Labels []string // class names, index = class id (required, non-empty)
	// Layout is how the outputs encode detections; "" detects it from the
	// output shapes (detector.DetectLayout).
	Layout                  detector.Layout
	InputWidth, InputHeight int             // network input size (required, > 0)
	Resize                  detector.Resize // "" = the layout's default
	Scale                   float64         // 0 = the layout's default
	Mean                    *[3]float64     // in BGR order; nil = the layout's default
	SwapRB                  *bool           // nil = the layout's default
	Confidence              float32         // 0 = 0.25
	NMS                     float32         // 0 = 0.45
	// Backend is detector.BackendCPU ("" = cpu), BackendCUDA or BackendCUDAFP16.
	Backend string
	// AllowCPUFallback runs the networks on the CPU when CUDA was asked for
	// but is unavailable, instead of failing.
	AllowCPUFallback bool
	// Nets is the number of networks loaded, hence of detections that can
	// run at the same time; 0 = 1.
	Nets   int
	Logger *slog.Logger // nil = discard
}

// Detector is a detector.Detector running a model with OpenCV's DNN module.
// A cv::dnn::Net is not safe for concurrent use, so it keeps a pool of
// networks and each detection borrows one.
type Detector struct {
	info   detector.Info
	labels []string
	pre    detector.Preprocess
	conf   float32
	nms    float32

	nets   []*net
	free   chan *net     // the networks not in use
	closed chan struct{} // closed by Close
	once   sync.Once
}

var _ detector.Detector = (*Detector)(nil)

// errClosed is returned by Detect after Close.
var errClosed = errors.New("detector closed")

// New loads Nets copies of the network, checks that each runs a forward
// pass on a picture of the input size, and works out the layout of its
// outputs. Every error names the model.
func New(opts Options) (*Detector, error) {
	o := opts
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Confidence == 0 {
		o.Confidence = 0.25
	}
	if o.NMS == 0 {
		o.NMS = 0.45
	}
	if o.Nets == 0 {
		o.Nets = 1
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	requested := o.Backend
	if requested == "" {
		requested = detector.BackendCPU
	}
	r, err := o.backend(requested)
	if err != nil {
		return nil, err
	}
	if err := o.checkFiles(); err != nil {
		return nil, err
	}

	d := &Detector{
		info: detector.Info{
			Model:       filepath.Base(o.Model),
			Backend:     "opencv",
			Target:      "cpu",
			Requested:   requested,
			InputWidth:  o.InputWidth,
			InputHeight: o.InputHeight,
		},
		labels: slices.Clone(o.Labels),
		conf:   o.Confidence,
		nms:    o.NMS,
		free:   make(chan *net, o.Nets),
		closed: make(chan struct{}),
	}
	switch r {
	case runCUDA:
		d.info.Backend, d.info.Target = "cuda", "cuda"
	case runCUDAFP16:
		d.info.Backend, d.info.Target = "cuda", "cuda_fp16"
	}
	for i := range o.Nets {
		n, shapes, err := o.load(r, i == 0)
		if err != nil {
			d.freeAll()
			return nil, err
		}
		d.nets = append(d.nets, n)
		d.free <- n
		if i > 0 {
			continue
		}
		if o.Layout != "" {
			err = detector.CheckLayout(o.Layout, shapes, len(o.Labels))
		} else {
			o.Layout, err = detector.DetectLayout(shapes, len(o.Labels))
		}
		if err != nil {
			d.freeAll()
			return nil, o.errorf("%w", err)
		}
	}
	d.info.Layout = o.Layout
	d.pre = o.preprocess()
	return d, nil
}

// errorf returns an error naming the model.
func (o *Options) errorf(format string, args ...any) error {
	return fmt.Errorf("model %s: "+format, append([]any{o.Model}, args...)...)
}

// validate checks the options that need no file.
func (o *Options) validate() error {
	switch {
	case o.Model == "":
		return errors.New("no model file given")
	case len(o.Labels) == 0:
		return o.errorf("no labels")
	case o.InputWidth < 1 || o.InputHeight < 1:
		return o.errorf("invalid input size %dx%d", o.InputWidth, o.InputHeight)
	case o.Resize != "" && o.Resize != detector.ResizeLetterbox && o.Resize != detector.ResizeStretch:
		return o.errorf("unknown resize %q, want %s or %s", o.Resize, detector.ResizeLetterbox, detector.ResizeStretch)
	case o.Scale < 0 || math.IsNaN(o.Scale) || math.IsInf(o.Scale, 0):
		return o.errorf("invalid scale %v", o.Scale)
	case !(o.Confidence > 0 && o.Confidence <= 1):
		return o.errorf("confidence %v out of (0, 1]", o.Confidence)
	case !(o.NMS > 0 && o.NMS <= 1):
		return o.errorf("NMS threshold %v out of (0, 1]", o.NMS)
	case o.Nets < 0:
		return o.errorf("invalid number of networks %d", o.Nets)
	}
	return nil
}

// backend picks what the networks run on. OpenCV quietly runs on the CPU
// when CUDA is missing, so that is checked here, to fail or to say so.
func (o *Options) backend(requested string) (run, error) {
	var r run
	switch requested {
	case detector.BackendCPU:
		return runCPU, nil
	case detector.BackendCUDA:
		r = runCUDA
	case detector.BackendCUDAFP16:
		r = runCUDAFP16
	default:
		return 0, o.errorf("unknown backend %q, want %s, %s or %s", requested, detector.BackendCPU, detector.BackendCUDA, detector.BackendCUDAFP16)
	}
	ok, err := available(r)
	if err != nil {
		return 0, o.errorf("backend %s: listing OpenCV's DNN backends: %w", requested, err)
	}
	var why, fix string
	if !ok {
		why = fmt.Sprintf("OpenCV %s has no CUDA DNN backend (built without CUDA)", opencvVersion())
		fix = "build OpenCV with CUDA and cuDNN (see deploy/cuda/)"
	} else if n := CUDADevices(); n < 1 {
		why = fmt.Sprintf("no CUDA device found (count %d)", n)
		fix = "check the NVIDIA driver and that the GPU is visible to the exporter"
	} else {
		return r, nil
	}
	if !o.AllowCPUFallback {
		return 0, o.errorf("backend %s: %s; %s or set backend: cpu or allow_cpu_fallback: true", requested, why, fix)
	}
	o.Logger.Warn("CUDA is unavailable, running the detector on the CPU",
		"model", o.Model, "backend", requested, "reason", why)
	return runCPU, nil
}

// checkFiles makes sure the model files can be read, so that the error
// names the file rather than OpenCV's parser.
func (o *Options) checkFiles() error {
	for _, path := range []string{o.Model, o.Config} {
		if path == "" {
			continue
		}
		f, err := os.Open(path)
		if err != nil {
			return o.errorf("%w", err)
		}
		fi, err := f.Stat()
		f.Close()
		if err != nil {
			return o.errorf("%w", err)
		}
		if fi.IsDir() {
			return o.errorf("%s is a directory", path)
		}
	}
	return nil
}

// darknet reports whether OpenCV's readNet reads the model as Darknet, and
// the weights file then.
func (o *Options) darknet() (string, bool) {
	switch {
	case filepath.Ext(o.Model) == ".cfg":
		return o.Config, true
	case filepath.Ext(o.Model) == ".weights", filepath.Ext(o.Config) == ".cfg":
		return o.Model, true
	}
	return "", false
}

// darknetHeader is the size of a Darknet weights file's header: its version
// tells the size of the "seen" field that ends it.
func darknetHeader(weights string) (int64, error) {
	f, err := os.Open(weights)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var v [2]int32
	if err := binary.Read(f, binary.LittleEndian, &v); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, fmt.Errorf("%s is too short for Darknet weights", weights)
		}
		return 0, err
	}
	// OpenCV fails on these with a message about transposed weights.
	if v[0] < 0 || v[1] < 0 || v[0] > 1000 || v[1] > 1000 {
		return 0, fmt.Errorf("%s is not Darknet weights: version %d.%d", weights, v[0], v[1])
	}
	if v[0]*10+v[1] >= 2 {
		return 20, nil
	}
	return 16, nil
}

// load reads and configures one network and runs it on a gray picture,
// which also has OpenCV allocate its buffers before the first detection.
// first checks the model more, for what all copies share.
func (o *Options) load(r run, first bool) (*net, [][]int, error) {
	weights, isDarknet := o.darknet()
	var header int64
	if first && isDarknet {
		// OpenCV reads the header into uninitialized variables even when
		// the file is shorter.
		var err error
		if header, err = darknetHeader(weights); err != nil {
			return nil, nil, o.errorf("%w", err)
		}
	}
	n, err := readNet(o.Model, o.Config, r)
	if err != nil {
		return nil, nil, fmt.Errorf("reading model %s (config %s): %w", o.Model, o.Config, trim(err))
	}
	if first && isDarknet {
		if err := o.checkWeights(n, weights, header); err != nil {
			n.free()
			return nil, nil, err
		}
	}
	w, h := o.InputWidth, o.InputHeight
	gray := detector.Image{Width: w, Height: h, Stride: 3 * w, Pix: make([]byte, 3*w*h)}
	for i := range gray.Pix {
		gray.Pix[i] = 128
	}
	full := detector.Placement{Width: w, Height: h, InputWidth: w, InputHeight: h}
	outs, err := n.forward(gray, full, o.preprocess())
	if err != nil {
		n.free()
		return nil, nil, o.errorf("forward pass with %dx%d input failed: %w", w, h, trim(err))
	}
	shapes := make([][]int, len(outs))
	for i, out := range outs {
		shapes[i] = slices.Clone(out.Shape)
		if first && slices.ContainsFunc(out.Data, notFinite) {
			n.free()
			return nil, nil, o.errorf("forward pass with %dx%d input gives NaN or infinite values: corrupt weights?", w, h)
		}
	}
	return n, shapes, nil
}

// checkWeights compares the size of a Darknet weights file with what its
// cfg needs: OpenCV reads a truncated file without a word, leaving the rest
// of the weights uninitialized.
func (o *Options) checkWeights(n *net, weights string, header int64) error {
	count, err := n.weights()
	if err != nil {
		return o.errorf("counting weights: %w", trim(err))
	}
	fi, err := os.Stat(weights)
	if err != nil {
		return o.errorf("%w", err)
	}
	want := header + 4*int64(count)
	switch {
	case fi.Size() < want:
		return o.errorf("%s holds %d bytes but config %s needs %d: truncated, or weights of another model",
			weights, fi.Size(), o.Config, want)
	case fi.Size() > want:
		o.Logger.Warn("Darknet weights file is larger than its config needs: are they for this config?",
			"weights", weights, "config", o.Config, "size", fi.Size(), "needed", want)
	}
	return nil
}

// preprocess is the layout's default preprocessing with the options'
// overrides.
func (o *Options) preprocess() detector.Preprocess {
	p := detector.DefaultPreprocess(o.Layout)
	if o.Resize != "" {
		p.Resize = o.Resize
	}
	if o.Scale != 0 {
		p.Scale = o.Scale
	}
	if o.Mean != nil {
		p.Mean = *o.Mean
	}
	if o.SwapRB != nil {
		p.SwapRB = *o.SwapRB
	}
	return p
}

func notFinite(v float32) bool {
	return math.IsNaN(float64(v)) || math.IsInf(float64(v), 0)
}

// trim drops the newline that ends OpenCV's messages.
func trim(err error) error {
	return errors.New(strings.TrimSpace(err.Error()))
}

// Place tells how a srcW x srcH picture must be scaled for Detect.
func (d *Detector) Place(srcW, srcH int) detector.Placement {
	return detector.Place(d.pre.Resize, srcW, srcH, d.info.InputWidth, d.info.InputHeight)
}

// Detect runs a network on pic, a srcW x srcH picture already scaled to
// Place(srcW, srcH), and returns the detections in source pixels. It waits
// for a free network no longer than ctx allows.
func (d *Detector) Detect(ctx context.Context, pic detector.Image, srcW, srcH int) (detector.Result, error) {
	if srcW < 1 || srcH < 1 {
		return detector.Result{}, fmt.Errorf("invalid source size %dx%d", srcW, srcH)
	}
	p := d.Place(srcW, srcH)
	if pic.Width != p.Width || pic.Height != p.Height {
		return detector.Result{}, fmt.Errorf("picture is %dx%d, want %dx%d for a %dx%d source",
			pic.Width, pic.Height, p.Width, p.Height, srcW, srcH)
	}
	if pic.Stride < 3*pic.Width || len(pic.Pix) < (pic.Height-1)*pic.Stride+3*pic.Width {
		return detector.Result{}, fmt.Errorf("%dx%d picture with stride %d holds only %d bytes",
			pic.Width, pic.Height, pic.Stride, len(pic.Pix))
	}
	n, err := d.acquire(ctx)
	if err != nil {
		return detector.Result{}, err
	}
	defer func() { d.free <- n }()

	start := time.Now()
	outs, err := n.forward(pic, p, d.pre)
	if err != nil {
		return detector.Result{}, fmt.Errorf("forward pass: %w", trim(err))
	}
	dets, err := detector.Decode(outs, detector.Decoding{
		Layout:     d.info.Layout,
		Placement:  p,
		SrcWidth:   srcW,
		SrcHeight:  srcH,
		Labels:     d.labels,
		Confidence: d.conf,
		NMS:        d.nms,
	})
	if err != nil {
		return detector.Result{}, fmt.Errorf("decoding the outputs: %w", err)
	}
	return detector.Result{Detections: dets, Duration: time.Since(start)}, nil
}

// acquire takes a free network, waiting no longer than ctx allows.
func (d *Detector) acquire(ctx context.Context) (*net, error) {
	select {
	case <-d.closed:
		return nil, errClosed
	default:
	}
	// The caller has given up already: no point in running a network.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("waiting for a free network: %w", err)
	}
	select {
	case n := <-d.free:
		// Both may have been ready; Close must win, or a Detect could
		// start after it.
		select {
		case <-d.closed:
			d.free <- n
			return nil, errClosed
		default:
			return n, nil
		}
	case <-d.closed:
		return nil, errClosed
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for a free network: %w", ctx.Err())
	}
}

// Labels are the class names, indexed by class. The caller must not modify
// them.
func (d *Detector) Labels() []string {
	return d.labels
}

// Info describes the model and what it runs on.
func (d *Detector) Info() detector.Info {
	return d.info
}

// Close waits for the detections in flight and frees the networks. Detect
// fails afterwards. Close may be called more than once.
func (d *Detector) Close() {
	d.once.Do(func() {
		close(d.closed)
		d.freeAll()
	})
}

// freeAll frees every network as it comes back to the pool.
func (d *Detector) freeAll() {
	for range d.nets {
		(<-d.free).free()
	}
}
