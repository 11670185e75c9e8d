package dnn

import (
	"bufio"
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"github.com/camera-exporter/camera_exporter/detector"
	"github.com/camera-exporter/camera_exporter/video"
)

// shared is the project's read-only test data, next to the repository root.
const shared = "../../../shared"

var (
	cocoDir = filepath.Join(shared, "models", "yolo-fastest-1.1")
	cocoCfg = filepath.Join(cocoDir, "yolo-fastest-1.1.cfg")
	cocoWts = filepath.Join(cocoDir, "yolo-fastest-1.1.weights")
	bodyDir = filepath.Join(shared, "models", "yolo-fastest-1.1-body")
)

// readLabels reads a Darknet .names file.
func readLabels(t testing.TB, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var labels []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		if l := strings.TrimSpace(s.Text()); l != "" {
			labels = append(labels, l)
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return labels
}

// cocoOptions are the options of the 80-class model.
func cocoOptions(t testing.TB) detector.Options {
	return detector.Options{
		Model:       cocoWts,
		Config:      cocoCfg,
		Labels:      readLabels(t, filepath.Join(cocoDir, "coco.names")),
		InputWidth:  320,
		InputHeight: 320,
	}
}

// newDetector is New that fails the test on error and closes at its end.
func newDetector(t testing.TB, o detector.Options) *Detector {
	t.Helper()
	d, err := New(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// photo reads one of the shared images and scales it as d places it, as
// the camera decoder would. It returns the picture and the source size.
func photo(t testing.TB, d *Detector, name string) (video.Image, int, int) {
	t.Helper()
	m := gocv.IMRead(filepath.Join(shared, "images", name), gocv.IMReadColor)
	defer m.Close()
	if m.Empty() {
		t.Fatalf("cannot read %s", name)
	}
	return scaled(m, d.Place(m.Cols(), m.Rows())), m.Cols(), m.Rows()
}

// scaled resizes m into p's size and copies it into an Image.
func scaled(m gocv.Mat, p detector.Placement) video.Image {
	r := gocv.NewMat()
	defer r.Close()
	gocv.Resize(m, &r, image.Pt(p.Width, p.Height), 0, 0, gocv.InterpolationArea)
	return video.Image{Width: p.Width, Height: p.Height, Stride: 3 * p.Width, Pix: r.ToBytes()}
}

// gray is a flat mid-gray picture.
func gray(w, h int) video.Image {
	pix := make([]byte, 3*w*h)
	for i := range pix {
		pix[i] = 128
	}
	return video.Image{Width: w, Height: h, Stride: 3 * w, Pix: pix}
}
