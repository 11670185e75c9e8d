package decode

import (
	"image"

	"gocv.io/x/gocv"

	"github.com/camera-exporter/camera_exporter/imagestats"
)

// The Canny thresholds of EdgeDensity, on 8-bit luma: OpenCV's usual pair.
// Fixed, so that a camera's edge density only changes with its view.
const (
	cannyLow  = 50
	cannyHigh = 150
)

// analysisSize returns the size at which the sharpness, edges and
// signature of a width x height picture are measured: imagestats.AnalysisWidth
// wide with the picture's aspect, or the picture's own size if it is
// narrower, since upscaling adds no detail.
func analysisSize(width, height int) (int, int) {
	if width <= imagestats.AnalysisWidth {
		return width, height
	}
	h := (height*imagestats.AnalysisWidth + width/2) / width
	return imagestats.AnalysisWidth, max(h, 1)
}

// colorSize returns the size at which colours are measured: half
// analysisSize, which is plenty for means and halves the cost of the
// decoder's BGR conversion.
func colorSize(width, height int) (int, int) {
	w, h := analysisSize(width, height)
	return max(w/2, 1), max(h/2, 1)
}

// levelsBelow returns how many 8-bit levels v satisfy v/255 < threshold,
// as the statistics define it; handing OpenCV threshold*255 as a float
// would round some thresholds to the neighbouring level.
func levelsBelow(threshold float64) int {
	n := 0
	for n < 256 && float64(n)/255 < threshold {
		n++
	}
	return n
}

// analyzer measures pictures for the Decoder and the Image alike, so both
// give the same statistics for the same picture. Its Mats are reused from
// one picture to the next: OpenCV reallocates their data only when the size
// changes.
type analyzer struct {
	mean, stddev gocv.Mat
	mask         gocv.Mat    // dark, then overexposed pixels
	half         [2]gocv.Mat // luma halved on the way to small
	small        gocv.Mat    // luma at analysisSize
	laplacian    gocv.Mat
	edges        gocv.Mat
	hsv          gocv.Mat
	signature    gocv.Mat
}

func newAnalyzer() analyzer {
	return analyzer{
		mean:      gocv.NewMat(),
		stddev:    gocv.NewMat(),
		mask:      gocv.NewMat(),
		half:      [2]gocv.Mat{gocv.NewMat(), gocv.NewMat()},
		small:     gocv.NewMat(),
		laplacian: gocv.NewMat(),
		edges:     gocv.NewMat(),
		hsv:       gocv.NewMat(),
		signature: gocv.NewMat(),
	}
}

// measure computes the statistics of a picture from its full range 8-bit
// luma at full size and its BGR version at colorSize. Dark pixels are those
// whose luma is strictly below darkThreshold.
func (a *analyzer) measure(luma, bgr gocv.Mat, darkThreshold float64) (imagestats.Stats, error) {
	w, h := luma.Cols(), luma.Rows()
	n := float64(w * h)
	stats := imagestats.Stats{Width: w, Height: h}

	// The luma levels are measured at full size, where a small bright or
	// dark area still counts exactly.
	gocv.MeanStdDev(luma, &a.mean, &a.stddev)
	stats.Brightness = a.mean.GetDoubleAt(0, 0) / 255
	stats.Contrast = a.stddev.GetDoubleAt(0, 0) / 255
	// Mark the samples at or below the highest dark level, then those
	// above the highest level that is not overexposed.
	gocv.Threshold(luma, &a.mask, float32(levelsBelow(darkThreshold)-1), 255, gocv.ThresholdBinaryInv)
	stats.DarkRatio = float64(gocv.CountNonZero(a.mask)) / n
	gocv.Threshold(luma, &a.mask, float32(levelsBelow(imagestats.OverexposedLuma)-1), 255, gocv.ThresholdBinary)
	stats.OverexposedRatio = float64(gocv.CountNonZero(a.mask)) / n

	// Detail is measured at a fixed width, so that the scales do not
	// depend on the camera's resolution, and compression noise, which
	// area averaging removes, counts less.
	sw, sh := analysisSize(w, h)
	a.shrink(luma, sw, sh)
	// ksize 1 is the plain 4-neighbour Laplacian; scaling by 1/255 puts it
	// on the 0 to 1 luma scale.
	gocv.Laplacian(a.small, &a.laplacian, gocv.MatTypeCV32F, 1, 1.0/255, 0, gocv.BorderDefault)
	gocv.MeanStdDev(a.laplacian, &a.mean, &a.stddev)
	sd := a.stddev.GetDoubleAt(0, 0)
	stats.Sharpness = sd * sd
	gocv.Canny(a.small, &a.edges, cannyLow, cannyHigh)
	stats.EdgeDensity = float64(gocv.CountNonZero(a.edges)) / float64(a.small.Cols()*a.small.Rows())

	gocv.CvtColor(bgr, &a.hsv, gocv.ColorBGRToHSV)
	stats.Saturation = a.hsv.Mean().Val2 / 255
	c := bgr.Mean()
	stats.Blue, stats.Green, stats.Red = c.Val1/255, c.Val2/255, c.Val3/255

	gocv.Resize(a.small, &a.signature, image.Pt(imagestats.SignatureWidth, imagestats.SignatureHeight), 0, 0, gocv.InterpolationArea)
	sig, err := a.signature.DataPtrUint8()
	if err != nil {
		return imagestats.Stats{}, err
	}
	// Callers keep signatures to compare them with later ones.
	stats.Signature = append([]uint8(nil), sig...)
	return stats, nil
}

// shrink scales luma to width x height into a.small with INTER_AREA. It
// halves the picture first while it is at least four times as large, since
// OpenCV vectorizes only exact halving: shrinking 1920x1080 to 320x180
// takes 0.3 ms so against 0.6 ms in one step, 2688x1520 0.7 ms against 8.
// An area average of area averages is the same average when the factors
// are whole (1080p: 2 then 3; 2560x1440: 2, 2, then 2), and close to it
// otherwise since the last step still spans two halved pixels at least.
func (a *analyzer) shrink(luma gocv.Mat, width, height int) {
	src := luma
	for i := 0; src.Cols() >= 4*width && src.Rows() >= 4*height; i ^= 1 {
		gocv.Resize(src, &a.half[i], image.Pt(src.Cols()/2, src.Rows()/2), 0, 0, gocv.InterpolationArea)
		src = a.half[i]
	}
	gocv.Resize(src, &a.small, image.Pt(width, height), 0, 0, gocv.InterpolationArea)
}

func (a *analyzer) close() {
	a.mean.Close()
	a.stddev.Close()
	a.mask.Close()
	a.half[0].Close()
	a.half[1].Close()
	a.small.Close()
	a.laplacian.Close()
	a.edges.Close()
	a.hsv.Close()
	a.signature.Close()
}
