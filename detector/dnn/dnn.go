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
	"github.com/camera-exporter/camera_exporter/internal/boundedfile"
	"github.com/camera-exporter/camera_exporter/video"
)

// Detector is a detector.Detector running a model with OpenCV's DNN module.
// A cv::dnn::Net is not safe for concurrent use, so it keeps a pool of
// networks and each detection borrows one.
type Detector struct {
	info   detector.Info
	labels []string
	pre    detector.Preprocess
	conf   float32
	nms    float32
	// head is the anchor-free head whose raw output the networks give,
	// their decoding cut off the graph; nil if they decode themselves.
	head *detector.Head

	nets   []*net
	free   chan *net     // the networks not in use
	closed chan struct{} // closed by Close
	once   sync.Once
}

var _ detector.Detector = (*Detector)(nil)

// errClosed is returned by Detect after Close.
var errClosed = errors.New("detector closed")

// New loads opts.Nets copies of the network, checks that each runs a
// forward pass on a picture of the input size, and works out the layout of
// its outputs. The options are validated and defaulted as package detector
// says (Options.Validate, Options.SetDefaults). Warnings go to logger; nil
// discards them. Every error names the model, if one is given.
func New(opts detector.Options, logger *slog.Logger) (*Detector, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	o := &loader{Options: opts, logger: logger}
	o.SetDefaults()
	var model onnxModel
	if o.ONNX() {
		// Labels and the input size may come from the model: read it first.
		var err error
		if model, err = o.readONNX(); err != nil {
			return nil, err
		}
	}
	if err := o.Validate(); err != nil {
		if o.Model == "" {
			return nil, err
		}
		return nil, o.errorf("%w", err)
	}
	if model.Model != nil {
		if err := o.rewriteONNX(model); err != nil {
			return nil, err
		}
	}
	r, err := o.backend()
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
			Requested:   o.Backend,
			InputWidth:  o.InputWidth,
			InputHeight: o.InputHeight,
			Rewrites:    o.rewrites,
		},
		labels: slices.Clone(o.Labels),
		conf:   float32(o.Confidence),
		nms:    float32(o.NMSThreshold),
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
		switch {
		case o.head != nil:
			err = o.head.Check(shapes, len(o.Labels))
		case o.Layout != "":
			err = detector.CheckLayout(o.Layout, shapes, len(o.Labels))
		default:
			o.Layout, err = detector.DetectLayout(shapes, len(o.Labels))
		}
		if err != nil {
			d.freeAll()
			return nil, o.errorf("%w", err)
		}
	}
	d.info.Layout = o.Layout
	d.head = o.head
	d.pre = o.Preprocess()
	return d, nil
}

// loader is what New works with: the options, the layout once inferred,
// the ONNX graph as rewritten for OpenCV, and where warnings go.
type loader struct {
	detector.Options
	logger *slog.Logger

	onnx     []byte         // the rewritten ONNX model; nil for other formats
	rewrites []string       // what the rewrite changed
	head     *detector.Head // the head whose decoding the rewrite cut off
}

// errorf returns an error naming the model.
func (o *loader) errorf(format string, args ...any) error {
	return fmt.Errorf("model %s: "+format, append([]any{o.Model}, args...)...)
}

// backend picks what the networks run on. OpenCV quietly runs on the CPU
// when CUDA is missing, so that is checked here, to fail or to say so.
func (o *loader) backend() (run, error) {
	requested := o.Backend
	var r run
	switch requested {
	case detector.BackendCPU:
		return runCPU, nil
	case detector.BackendCUDA:
		r = runCUDA
	case detector.BackendCUDAFP16:
		r = runCUDAFP16
	default:
		return 0, o.errorf("unknown backend %q", requested) // Validate lets none through
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
	o.logger.Warn("CUDA is unavailable, running the detector on the CPU",
		"model", o.Model, "backend", requested, "reason", why)
	return runCPU, nil
}

// checkFiles makes sure the model files can be read, so that the error
// names the file rather than OpenCV's parser.
func (o *loader) checkFiles() error {
	for _, path := range []string{o.Model, o.Config} {
		if path == "" {
			continue
		}
		f, _, err := boundedfile.Open(path, modelFile)
		if err != nil {
			return o.errorf("%w", err)
		}
		f.Close()
	}
	return nil
}

// modelFile is a file of a network as the loader opens it; config checks
// each against the limit of its kind before.
var modelFile = boundedfile.Kind{What: "a model file", Limit: 1 << 30}

// darknet reports whether OpenCV's readNet reads the model as Darknet, and
// the weights file then.
func (o *loader) darknet() (string, bool) {
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
	f, _, err := boundedfile.Open(weights, modelFile)
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
func (o *loader) load(r run, first bool) (*net, [][]int, error) {
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
	var n *net
	var err error
	if o.onnx != nil {
		n, err = readONNX(o.onnx, r)
	} else {
		n, err = readNet(o.Model, o.Config, r)
	}
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
	gray := video.Image{Width: w, Height: h, Stride: 3 * w, Pix: make([]byte, 3*w*h)}
	for i := range gray.Pix {
		gray.Pix[i] = 128
	}
	full := detector.Placement{Width: w, Height: h, InputWidth: w, InputHeight: h}
	outs, err := n.forward(gray, full, o.Preprocess())
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
func (o *loader) checkWeights(n *net, weights string, header int64) error {
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
		o.logger.Warn("Darknet weights file is larger than its config needs: are they for this config?",
			"weights", weights, "config", o.Config, "size", fi.Size(), "needed", want)
	}
	return nil
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
func (d *Detector) Detect(ctx context.Context, pic video.Image, srcW, srcH int) (detector.Result, error) {
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
		Head:       d.head,
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
