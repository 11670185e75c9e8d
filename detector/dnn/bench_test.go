package dnn

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/camera-exporter/camera_exporter/detector"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
	"github.com/camera-exporter/camera_exporter/video"
)

// benchDetectors are the networks BenchmarkDetectors compares: Yolo-Fastest
// (Darknet) and the "n" models users export from Ultralytics at the opset
// it picks for OpenCV (12), 80 COCO classes, anchors folded.
var benchDetectors = []struct {
	name, spec string
	size       int
}{
	{"yolo-fastest-320", "", 320},
	{"yolov8n-320", "yolov8-o12-folded-320-c80", 320},
	{"yolov8n-640", "yolov8-o12-folded-640-c80", 640},
	{"yolo11n-320", "yolo11-o12-folded-320-c80", 320},
	{"yolo11n-640", "yolo11-o12-folded-640-c80", 640},
	{"yolov5n-640", "yolov5-o12-folded-640-c80", 640},
}

// BenchmarkDetectors measures one detection on a photograph, forward pass
// and decode, for each network of benchDetectors, and reports the time of
// the Go decode alone on the same network outputs. The Ultralytics networks
// are built by PyTorch (seeded weights, calibrated on the photograph so that
// a handful of boxes pass), skipped without it.
func BenchmarkDetectors(b *testing.B) {
	src := gocv.IMRead(filepath.Join(shared, "images", "person.jpg"), gocv.IMReadColor)
	defer src.Close()
	if src.Empty() {
		b.Fatal("cannot read person.jpg")
	}
	var models map[string]string
	// The sub-benchmarks run more than once (b.N 1, then the -benchtime
	// count): build the networks and load them once.
	detectors := map[string]*Detector{}
	b.Cleanup(func() {
		for _, d := range detectors {
			d.Close()
		}
	})
	for _, bd := range benchDetectors {
		b.Run(bd.name, func(b *testing.B) {
			d := detectors[bd.name]
			if d == nil {
				o := cocoOptions(b)
				if bd.spec != "" {
					if models == nil {
						models = benchModels(b, src)
					}
					o = detector.Options{Model: models[bd.spec]}
				}
				var err error
				if d, err = New(o, nil); err != nil {
					b.Fatal(err)
				}
				detectors[bd.name] = d
			}
			pic := scaled(src, d.Place(src.Cols(), src.Rows()))
			for b.Loop() {
				if _, err := d.Detect(context.Background(), pic, src.Cols(), src.Rows()); err != nil {
					b.Fatal(err)
				}
			}
			frame := float64(b.Elapsed().Microseconds()) / 1000 / float64(b.N)
			decode := decodeTime(b, d, pic, src.Cols(), src.Rows(), b.N)
			b.ReportMetric(frame, "ms/frame")
			b.ReportMetric(decode, "decode-ms/frame")
			b.ReportMetric(100*decode/frame, "decode-%")
		})
	}
}

// benchModels builds the Ultralytics networks of benchDetectors, each
// calibrated on src as it is placed in its input.
func benchModels(b *testing.B, src gocv.Mat) map[string]string {
	calibration := map[int]testutil.YOLORequest{}
	var specs []string
	for _, bd := range benchDetectors {
		if bd.spec == "" {
			continue
		}
		specs = append(specs, bd.spec)
		p := detector.Place(detector.ResizeLetterbox, src.Cols(), src.Rows(), bd.size, bd.size)
		calibration[bd.size] = testutil.YOLORequest{Picture: ppmOf(b, scaled(src, p)),
			Left: p.Left, Top: p.Top, SrcWidth: src.Cols(), SrcHeight: src.Rows()}
	}
	return testutil.YOLOModels(b, calibration, specs...)
}

// decodeTime runs one forward pass of a network of d on pic and returns
// the mean time, in milliseconds, of n decodes of its outputs as Detect
// decodes them.
func decodeTime(b *testing.B, d *Detector, pic video.Image, srcW, srcH, n int) float64 {
	net, err := d.acquire(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	p := d.Place(srcW, srcH)
	// The outputs are the network's buffers until its next pass.
	defer func() { d.free <- net }()
	outs, err := net.forward(pic, p, d.pre)
	if err != nil {
		b.Fatal(err)
	}
	decoding := detector.Decoding{Layout: d.info.Layout, Head: d.head, Placement: p, SrcWidth: srcW, SrcHeight: srcH,
		Labels: d.labels, Confidence: d.conf, NMS: d.nms}
	start := time.Now()
	for range n {
		if _, err := detector.Decode(outs, decoding); err != nil {
			b.Fatal(err)
		}
	}
	return float64(time.Since(start).Microseconds()) / 1000 / float64(n)
}

// ppmOf writes pic for the YOLO generator and returns the file's path.
func ppmOf(tb testing.TB, pic video.Image) string {
	return testutil.WritePPM(tb, pic.Width, pic.Height, pic.Stride, pic.Pix)
}
