package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/camera/decode"
	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/detector"
	"github.com/camera-exporter/camera_exporter/detector/dnn"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
	"github.com/camera-exporter/camera_exporter/video"
)

// ultralyticsExports are the networks users export with `yolo export
// format=onnx`, built as internal/testutil/yolo/yolo.py says: YOLOv8 and
// YOLO11 at opsets 11, 12, 13 and 17, anchors folded to constants or
// computed in the graph, inputs of 320, 416 and 640, 80 classes and custom
// ones; YOLOv5, whose graph decodes its grid, at each opset.
var ultralyticsExports = []string{
	"yolov8-o11-folded-320-c80",
	"yolov8-o11-traced-416-c1",
	"yolov8-o12-folded-416-c2",
	"yolov8-o12-traced-640-c3",
	"yolov8-o13-folded-640-c80",
	"yolov8-o13-traced-320-c2",
	"yolov8-o17-folded-320-c3",
	"yolov8-o17-traced-640-c80",
	"yolo11-o11-folded-416-c3",
	"yolo11-o11-traced-320-c80",
	"yolo11-o12-folded-640-c1",
	"yolo11-o12-traced-320-c2",
	"yolo11-o13-folded-320-c80",
	"yolo11-o13-traced-416-c1",
	"yolo11-o17-folded-640-c2",
	"yolo11-o17-traced-320-c80",
	"yolov5-o11-folded-320-c80",
	"yolov5-o12-folded-416-c1",
	"yolov5-o13-folded-640-c3",
	"yolov5-o17-folded-320-c2",
}

// TestUltralyticsExports loads each export with its path alone, runs it on
// a photograph received through the RTSP path, and compares what the
// exporter finds (OpenCV's forward of the rewritten graph, the Go decode,
// NMS) with PyTorch's forward of the whole network decoded independently.
func TestUltralyticsExports(t *testing.T) {
	srv, err := rtsptest.Start(rtsptest.Options{}, map[string]*rtsptest.Media{"person": rtsptest.Photo(t, filepath.Join(sharedImages, "person.jpg"))})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cfg, err := config.Parse([]byte(fmt.Sprintf("cameras:\n  - name: person\n    url: %s\n", srv.URL("person"))))
	if err != nil {
		t.Fatal(err)
	}
	stream := camera.NewStream(cfg.Cameras[0], camera.NewDecoderPool(camera.AsNewDecoder(decode.New)), slog.New(slog.DiscardHandler))
	defer stream.Stop()

	// The picture as each input size places it, once per size.
	type placed struct {
		pic        video.Image
		p          detector.Placement
		srcW, srcH int
		ppm        string
	}
	pictures := map[int]*placed{}
	for _, size := range []int{320, 416, 640} {
		var frame camera.Frame
		var pl placed
		scaled := func(w, h int) (int, int) {
			pl.srcW, pl.srcH = w, h
			pl.p = detector.Place(detector.ResizeLetterbox, w, h, size, size)
			return pl.p.Width, pl.p.Height
		}
		testutil.WaitFor(t, "an analyzed frame", 20*time.Second, func() bool {
			frame, err = stream.Analyze(scaled)
			return err == nil
		})
		// The stream reuses the picture's memory at its next analysis.
		pl.pic = frame.Picture
		pl.pic.Pix = slices.Clone(pl.pic.Pix)
		pl.ppm = testutil.WritePPM(t, frame.Picture.Width, frame.Picture.Height, frame.Picture.Stride, frame.Picture.Pix)
		pictures[size] = &pl
	}

	calibration := map[int]testutil.YOLORequest{}
	for size, pl := range pictures {
		calibration[size] = testutil.YOLORequest{Picture: pl.ppm, Left: pl.p.Left, Top: pl.p.Top, SrcWidth: pl.srcW, SrcHeight: pl.srcH}
	}
	models := testutil.YOLOModels(t, calibration, ultralyticsExports...)

	reqs := make([]testutil.YOLORequest, len(ultralyticsExports))
	for i, spec := range ultralyticsExports {
		pl := pictures[specSize(t, spec)]
		reqs[i] = testutil.YOLORequest{Spec: spec, Picture: pl.ppm, Left: pl.p.Left, Top: pl.p.Top, SrcWidth: pl.srcW, SrcHeight: pl.srcH}
	}
	want := testutil.YOLOReference(t, reqs)

	for i, spec := range ultralyticsExports {
		t.Run(spec, func(t *testing.T) {
			d, err := dnn.New(detector.Options{Model: models[spec]}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			info := d.Info()
			size := specSize(t, spec)
			if info.InputWidth != size || info.InputHeight != size {
				t.Errorf("input %dx%d, want the metadata's %dx%d", info.InputWidth, info.InputHeight, size, size)
			}
			if classes := specClasses(t, spec); len(d.Labels()) != classes {
				t.Errorf("%d labels, want the metadata's %d", len(d.Labels()), classes)
			}
			if strings.HasPrefix(spec, "yolov5") {
				if info.Layout != detector.LayoutYOLOv5 {
					t.Errorf("layout %s, want yolov5", info.Layout)
				}
			} else if info.Layout != detector.LayoutYOLOv8 || len(info.Rewrites) == 0 || !strings.Contains(info.Rewrites[0], "decode it in Go") {
				t.Errorf("layout %s, rewrites %q: want yolov8 with the head's decoding cut off", info.Layout, info.Rewrites)
			}

			pl := pictures[size]
			res, err := d.Detect(context.Background(), pl.pic, pl.srcW, pl.srcH)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(want[i]); n < 1 || n > 30 {
				t.Fatalf("PyTorch finds %d objects: the network's biases must let a handful through", n)
			}
			compareDetections(t, res.Detections, want[i], d.Labels())
			t.Logf("%d objects, as PyTorch finds them", len(want[i]))
		})
	}
}

// compareDetections matches the exporter's detections with the
// reference's: the same classes, boxes within a pixel, scores within
// 1e-3. A detection whose score is that close to the threshold may be
// on one side only.
func compareDetections(t *testing.T, got []detector.Detection, want []testutil.YOLODetection, labels []string) {
	t.Helper()
	const threshold, scoreTolerance, pixelTolerance = detector.DefaultConfidence, 1e-3, 1.0
	used := make([]bool, len(got))
	for _, w := range want {
		found := false
		for j, g := range got {
			if used[j] || g.Class != w.Class || math.Abs(float64(g.Confidence)-w.Confidence) > scoreTolerance {
				continue
			}
			b := [4]float64{float64(g.Box.X), float64(g.Box.Y), float64(g.Box.Width), float64(g.Box.Height)}
			near := true
			for k := range b {
				// Compare the corners, not width and height.
				ref, v := w.Box[k], b[k]
				if k >= 2 {
					ref, v = w.Box[k]+w.Box[k-2], b[k]+b[k-2]
				}
				near = near && math.Abs(ref-v) <= pixelTolerance
			}
			if near {
				used[j], found = true, true
				break
			}
		}
		if !found && w.Confidence-threshold > scoreTolerance {
			t.Errorf("PyTorch finds %s %.4f at %.1f, the exporter does not; it finds %v", labels[w.Class], w.Confidence, w.Box, got)
		}
	}
	for j, g := range got {
		if !used[j] && float64(g.Confidence)-threshold > scoreTolerance {
			t.Errorf("the exporter finds %s %.4f at %v, PyTorch does not", g.Label, g.Confidence, g.Box)
		}
	}
}

// specSize and specClasses read a network's input size and class count
// from its spec, FAMILY-oOPSET-ANCHORS-SIZE-cCLASSES.
func specSize(t testing.TB, spec string) int {
	var size int
	if _, err := fmt.Sscan(strings.Split(spec, "-")[3], &size); err != nil {
		t.Fatalf("spec %s: %v", spec, err)
	}
	return size
}

func specClasses(t testing.TB, spec string) int {
	var classes int
	if _, err := fmt.Sscan(strings.TrimPrefix(strings.Split(spec, "-")[4], "c"), &classes); err != nil {
		t.Fatalf("spec %s: %v", spec, err)
	}
	return classes
}
