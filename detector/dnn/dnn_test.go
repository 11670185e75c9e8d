package dnn

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/camera-exporter/camera_exporter/detector"
	"github.com/camera-exporter/camera_exporter/video"
)

// iou is the intersection over union of two boxes.
func iou(a, b detector.Box) float32 {
	w := min(a.X+a.Width, b.X+b.Width) - max(a.X, b.X)
	h := min(a.Y+a.Height, b.Y+b.Height) - max(a.Y, b.Y)
	if w <= 0 || h <= 0 {
		return 0
	}
	return w * h / (a.Width*a.Height + b.Width*b.Height - w*h)
}

// best is the most confident detection of label, if any.
func best(dets []detector.Detection, label string) (detector.Detection, bool) {
	for _, d := range dets {
		// Decode sorts by confidence.
		if d.Label == label {
			return d, true
		}
	}
	return detector.Detection{}, false
}

// Regions measured by hand in person.jpg (640x424).
var (
	personBox = detector.Box{X: 190, Y: 98, Width: 85, Height: 277}
	dogBox    = detector.Box{X: 65, Y: 263, Width: 140, Height: 82}
)

func TestInfo(t *testing.T) {
	d := newDetector(t, cocoOptions(t))
	want := detector.Info{
		Model:       "yolo-fastest-1.1.weights",
		Layout:      detector.LayoutDarknet,
		Backend:     "opencv",
		Target:      "cpu",
		Requested:   "cpu",
		InputWidth:  320,
		InputHeight: 320,
	}
	if got := d.Info(); !reflect.DeepEqual(got, want) {
		t.Errorf("Info() = %+v, want %+v", got, want)
	}
	if l := d.Labels(); len(l) != 80 || l[0] != "person" {
		t.Errorf("Labels() = %d labels starting %q, want 80 starting person", len(l), l[0])
	}
	// Darknet stretches the picture over the whole input.
	if p, want := d.Place(640, 424), (detector.Placement{Width: 320, Height: 320, InputWidth: 320, InputHeight: 320}); p != want {
		t.Errorf("Place(640, 424) = %+v, want %+v", p, want)
	}
}

func TestDetectCOCO(t *testing.T) {
	d := newDetector(t, cocoOptions(t))
	pic, w, h := photo(t, d, "person.jpg")
	r, err := d.Detect(context.Background(), pic, w, h)
	if err != nil {
		t.Fatal(err)
	}
	if r.Duration <= 0 {
		t.Errorf("Duration = %v, want > 0", r.Duration)
	}
	for _, want := range []struct {
		label string
		box   detector.Box
	}{{"person", personBox}, {"dog", dogBox}} {
		det, ok := best(r.Detections, want.label)
		if !ok {
			t.Errorf("no %s in person.jpg: %+v", want.label, r.Detections)
			continue
		}
		if det.Confidence < 0.5 {
			t.Errorf("%s confidence %v, want > 0.5", want.label, det.Confidence)
		}
		if o := iou(det.Box, want.box); o < 0.6 {
			t.Errorf("%s at %+v overlaps %+v by IoU %.2f, want >= 0.6", want.label, det.Box, want.box, o)
		}
	}
}

func TestDetectNoPerson(t *testing.T) {
	d := newDetector(t, cocoOptions(t))
	for _, name := range []string{"dog.jpg", "giraffe.jpg", "eagle.jpg"} {
		pic, w, h := photo(t, d, name)
		r, err := d.Detect(context.Background(), pic, w, h)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Detections) == 0 {
			t.Errorf("%s: nothing found", name)
		}
		// yolo-fastest sees a person at about 0.3 in dog.jpg, in the
		// window at the top left, so the bar is that of TestDetectCOCO.
		if det, ok := best(r.Detections, "person"); ok && det.Confidence > 0.5 {
			t.Errorf("%s: person at %v: %+v", name, det.Confidence, det.Box)
		}
	}
}

func TestDetectGray(t *testing.T) {
	d := newDetector(t, cocoOptions(t))
	r, err := d.Detect(context.Background(), gray(320, 320), 1280, 720)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Detections) != 0 {
		t.Errorf("flat gray picture: %+v, want nothing", r.Detections)
	}
}

func TestDetectBody(t *testing.T) {
	d := newDetector(t, detector.Options{
		Model:       filepath.Join(bodyDir, "yolo-fastest-1.1_body.weights"),
		Config:      filepath.Join(bodyDir, "yolo-fastest-1.1_body.cfg"),
		Labels:      readLabels(t, filepath.Join(bodyDir, "body.names")),
		InputWidth:  320,
		InputHeight: 320,
	})
	pic, w, h := photo(t, d, "person.jpg")
	r, err := d.Detect(context.Background(), pic, w, h)
	if err != nil {
		t.Fatal(err)
	}
	// The class of body.names is "body".
	det, ok := best(r.Detections, "body")
	if !ok || det.Confidence < 0.5 || iou(det.Box, personBox) < 0.6 {
		t.Errorf("detections %+v, want a body over %+v", r.Detections, personBox)
	}
}

// TestLetterbox runs the Darknet model letterboxed, which it was not trained
// for but still recognizes the person with: the padding and the mapping back
// to the source must line up.
func TestLetterbox(t *testing.T) {
	o := cocoOptions(t)
	o.Resize = detector.ResizeLetterbox
	d := newDetector(t, o)
	pic, w, h := photo(t, d, "person.jpg")
	if pic.Width != 320 || pic.Height != 212 {
		t.Fatalf("letterboxed picture %dx%d, want 320x212", pic.Width, pic.Height)
	}
	r, err := d.Detect(context.Background(), pic, w, h)
	if err != nil {
		t.Fatal(err)
	}
	det, ok := best(r.Detections, "person")
	if !ok || det.Confidence < 0.5 || iou(det.Box, personBox) < 0.6 {
		t.Errorf("detections %+v, want a person over %+v", r.Detections, personBox)
	}
}

func TestDetectWrongPicture(t *testing.T) {
	d := newDetector(t, cocoOptions(t))
	for _, tc := range []struct {
		name       string
		pic        video.Image
		srcW, srcH int
		want       string
	}{
		{"size", gray(640, 424), 640, 424, "picture is 640x424, want 320x320"},
		{"short", video.Image{Width: 320, Height: 320, Stride: 960, Pix: make([]byte, 1000)}, 640, 424, "holds only 1000 bytes"},
		{"stride", video.Image{Width: 320, Height: 320, Stride: 10, Pix: make([]byte, 3*320*320)}, 640, 424, "stride 10"},
		{"source", gray(320, 320), 0, 424, "invalid source size 0x424"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.Detect(context.Background(), tc.pic, tc.srcW, tc.srcH)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Detect: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// writeFile writes data to a file in dir and returns its path.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// noise is n bytes of reproducible noise.
func noise(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestNewErrors loads broken models in process: an exception escaping
// OpenCV would kill the test binary.
func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	weights, err := os.ReadFile(cocoWts)
	if err != nil {
		t.Fatal(err)
	}
	// The header of a Darknet weights file, then noise: OpenCV reads it all
	// as weights.
	garbage := append(weights[:20:20], noise(len(weights)-20)...)
	fifo := filepath.Join(dir, "fifo.cfg")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	cudaMissing := func(backend string) string {
		return "backend " + backend + ": "
	}
	for _, tc := range []struct {
		name   string
		change func(*detector.Options)
		want   []string
	}{
		{"missing model", func(o *detector.Options) { o.Model = filepath.Join(dir, "missing.weights") }, []string{"no such file"}},
		{"missing config", func(o *detector.Options) { o.Config = filepath.Join(dir, "missing.cfg") }, []string{"missing.cfg", "no such file"}},
		{"directory", func(o *detector.Options) { o.Model = dir }, []string{dir + ": not a regular file but a directory"}},
		// Its open blocked until a writer came.
		{"FIFO config", func(o *detector.Options) { o.Config = fifo }, []string{fifo + ": not a regular file but a named pipe (FIFO)"}},
		{"random weights", func(o *detector.Options) { o.Model = writeFile(t, dir, "random.weights", noise(100000)) }, []string{"random.weights is not Darknet weights: version"}},
		{"garbage weights", func(o *detector.Options) { o.Model = writeFile(t, dir, "garbage.weights", garbage) }, []string{"NaN or infinite", "corrupt weights"}},
		{"truncated weights", func(o *detector.Options) { o.Model = writeFile(t, dir, "truncated.weights", weights[:1000]) },
			[]string{"holds 1000 bytes but config " + cocoCfg + " needs 1384268: truncated"}},
		{"empty weights", func(o *detector.Options) { o.Model = writeFile(t, dir, "empty.weights", nil) }, []string{"too short for Darknet weights"}},
		{"random config", func(o *detector.Options) { o.Config = writeFile(t, dir, "random.cfg", noise(5000)) },
			[]string{"reading model", "(config " + filepath.Join(dir, "random.cfg") + "): OpenCV"}},
		{"input size", func(o *detector.Options) { o.InputWidth, o.InputHeight = 100, 100 },
			[]string{"forward pass with 100x100 input failed", "Inconsistent shape for ConcatLayer"}},
		{"labels", func(o *detector.Options) { o.Labels = []string{"a", "b", "c"} }, []string{"fit no known layout for 3 classes"}},
		{"layout", func(o *detector.Options) { o.Layout = detector.LayoutYOLOv8 }, []string{"do not fit layout yolov8"}},
		{"no model", func(o *detector.Options) { o.Model = "" }, []string{"missing model"}},
		{"no labels", func(o *detector.Options) { o.Labels = nil }, []string{"missing labels"}},
		{"no input size", func(o *detector.Options) { o.InputWidth = 0 }, []string{"input_size 0x320: width and height must be 1 to 4096"}},
		{"resize", func(o *detector.Options) { o.Resize = "crop" }, []string{`resize "crop": must be one of letterbox, stretch`}},
		{"confidence", func(o *detector.Options) { o.Confidence = 2 }, []string{"confidence 2: must be greater than 0 and at most 1"}},
		{"nets", func(o *detector.Options) { o.Nets = -1 }, []string{"nets -1: must be 1 to 64"}},
		{"unknown backend", func(o *detector.Options) { o.Backend = "tpu" }, []string{`backend "tpu": must be one of cpu, cuda, cuda_fp16`}},
		{"invalid options", func(o *detector.Options) { o.Labels, o.Nets = nil, 100 }, []string{"missing labels\nnets 100: must be 1 to 64"}},
		{"cuda", func(o *detector.Options) { o.Backend = detector.BackendCUDA }, []string{cudaMissing("cuda"), "allow_cpu_fallback: true"}},
		{"cuda_fp16", func(o *detector.Options) { o.Backend = detector.BackendCUDAFP16 }, []string{cudaMissing("cuda_fp16"), "allow_cpu_fallback: true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := cocoOptions(t)
			tc.change(&o)
			if strings.HasPrefix(o.Backend, "cuda") && cudaWorks(t) {
				t.Skip("CUDA works here")
			}
			d, err := New(o, nil)
			if err == nil {
				d.Close()
				t.Fatal("New succeeded")
			}
			t.Log(err)
			for _, want := range append(tc.want, o.Model) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

// TestNewInvalidOptions checks that New refuses what detector.Options.Validate
// does, every problem a *detector.FieldError, before loading anything.
func TestNewInvalidOptions(t *testing.T) {
	o := cocoOptions(t)
	o.Model = filepath.Join(t.TempDir(), "missing.weights")
	o.Confidence, o.Backend = -1, "tpu"
	_, err := New(o, nil)
	var fe *detector.FieldError
	if !errors.As(err, &fe) || fe.Field != "confidence" {
		t.Fatalf("New: %v, want a *detector.FieldError about confidence first", err)
	}
	if msg := err.Error(); !strings.Contains(msg, `backend "tpu"`) || strings.Contains(msg, "no such file") {
		t.Errorf("New: %q, want every invalid option and no file checked", msg)
	}
}

// cudaWorks reports whether OpenCV can run networks on CUDA here.
func cudaWorks(t *testing.T) bool {
	ok, err := available(runCUDA)
	if err != nil {
		t.Fatal(err)
	}
	return ok && CUDADevices() > 0
}

func TestCUDAMissing(t *testing.T) {
	if cudaWorks(t) {
		t.Skip("CUDA works here")
	}
	if n := CUDADevices(); n > 0 {
		t.Errorf("CUDADevices() = %d without a CUDA backend", n)
	}
	_, err := New(detector.Options{Model: cocoWts, Config: cocoCfg, Labels: []string{"x"}, InputWidth: 320, InputHeight: 320, Backend: detector.BackendCUDA}, nil)
	if ok, _ := available(runCUDA); !ok && (err == nil || !strings.Contains(err.Error(), "has no CUDA DNN backend (built without CUDA)")) {
		t.Errorf("New: %v, want an error saying OpenCV lacks CUDA", err)
	}
	for _, backend := range []string{detector.BackendCUDA, detector.BackendCUDAFP16} {
		t.Run(backend, func(t *testing.T) {
			var logs bytes.Buffer
			o := cocoOptions(t)
			o.Backend = backend
			o.AllowCPUFallback = true
			d, err := New(o, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(d.Close)
			info := d.Info()
			if info.Backend != "opencv" || info.Target != "cpu" || info.Requested != backend {
				t.Errorf("Info() = %+v, want backend opencv, target cpu, requested %s", info, backend)
			}
			if log := logs.String(); !strings.Contains(log, "level=WARN") || !strings.Contains(log, "running the detector on the CPU") ||
				!strings.Contains(log, "backend="+backend) {
				t.Errorf("log %q, want a warning about the CPU fallback", log)
			}
			pic, w, h := photo(t, d, "person.jpg")
			r, err := d.Detect(context.Background(), pic, w, h)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := best(r.Detections, "person"); !ok {
				t.Errorf("no person: %+v", r.Detections)
			}
		})
	}
}

func TestPoolConcurrent(t *testing.T) {
	o := cocoOptions(t)
	o.Nets = 2
	d := newDetector(t, o)
	pic, w, h := photo(t, d, "person.jpg")
	want, err := d.Detect(context.Background(), pic, w, h)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			for range 3 {
				r, err := d.Detect(context.Background(), pic, w, h)
				if err != nil {
					t.Error(err)
					return
				}
				if len(r.Detections) != len(want.Detections) {
					t.Errorf("%d detections, want %d as the first time", len(r.Detections), len(want.Detections))
					return
				}
				for i, det := range r.Detections {
					if w := want.Detections[i]; det.Label != w.Label || iou(det.Box, w.Box) < 0.99 {
						t.Errorf("detection %d: %+v, want %+v as the first time", i, det, w)
					}
				}
			}
		})
	}
	wg.Wait()
}

func TestPoolBusy(t *testing.T) {
	o := cocoOptions(t)
	o.Nets = 2
	d := newDetector(t, o)
	// Hold every network, as two long detections would.
	var held []*net
	for range o.Nets {
		n, err := d.acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, n)
	}
	pic := gray(320, 320)

	expired, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	_, err := d.Detect(expired, pic, 640, 480)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "waiting for a free network") {
		t.Errorf("Detect with a canceled context: %v", err)
	}
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = d.Detect(short, pic, 640, 480)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waiting for a free network") {
		t.Errorf("Detect with a short deadline: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Detect waited %v past its context", took)
	}

	// Close waits for the networks in flight.
	closed := make(chan struct{})
	go func() {
		d.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned with networks in use")
	case <-time.After(50 * time.Millisecond):
	}
	// Detect fails once Close started, not waiting for a network.
	if _, err := d.Detect(context.Background(), pic, 640, 480); !errors.Is(err, errClosed) {
		t.Errorf("Detect while closing: %v, want %v", err, errClosed)
	}
	for _, n := range held {
		d.free <- n
	}
	<-closed
}

func TestClose(t *testing.T) {
	d, err := New(cocoOptions(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	d.Close()
	done := make(chan error)
	go func() {
		_, err := d.Detect(context.Background(), gray(320, 320), 640, 480)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, errClosed) {
			t.Errorf("Detect after Close: %v, want %v", err, errClosed)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Detect after Close hangs")
	}
}

// BenchmarkDetect measures one detection at a time on one network.
func BenchmarkDetect(b *testing.B) {
	d := newDetector(b, cocoOptions(b))
	pic, w, h := photo(b, d, "person.jpg")
	for b.Loop() {
		if _, err := d.Detect(context.Background(), pic, w, h); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/detection")
}

// BenchmarkDetectParallel measures detections from GOMAXPROCS goroutines at
// once on one and on two networks: whether a second network is worth its
// memory depends on how OpenCV shares the cores between them.
func BenchmarkDetectParallel(b *testing.B) {
	for _, nets := range []int{1, 2} {
		b.Run(strconv.Itoa(nets)+"nets", func(b *testing.B) {
			o := cocoOptions(b)
			o.Nets = nets
			d := newDetector(b, o)
			pic, w, h := photo(b, d, "person.jpg")
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := d.Detect(context.Background(), pic, w, h); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/detection")
		})
	}
}

// TestDarknetHeaderRefusesSwappedFiles checks the weights' second open, for
// their header: a file swapped for a FIFO or a directory after checkFiles
// is refused, at once, instead of blocking the load until a writer comes.
func TestDarknetHeaderRefusesSwappedFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.weights")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{fifo, fifo + ": not a regular file but a named pipe (FIFO)"},
		{dir, dir + ": not a regular file but a directory"},
	} {
		if _, err := darknetHeader(tc.path); err == nil || err.Error() != tc.want {
			t.Errorf("darknetHeader(%s) = %v, want %q", tc.path, err, tc.want)
		}
	}
}
