package decode

import (
	"fmt"
	"image"
	"os"

	"gocv.io/x/gocv"

	"github.com/camera-exporter/camera_exporter/imagestats"
	"github.com/camera-exporter/camera_exporter/video"
)

// Image is a photograph (JPEG, PNG, ... anything gocv.IMRead reads) analyzed
// like a decoded frame, to build a camera's reference from a training set.
// It must be closed to free its Mats, and is used by one goroutine at a
// time.
type Image struct {
	bgr      gocv.Mat // the photograph at full size
	luma     gocv.Mat // full range BT.601 luma of bgr
	color    gocv.Mat // bgr at colorSize
	scaled   gocv.Mat // Picture's
	analyzer analyzer
}

// OpenImage reads the photograph at path. As gocv.IMRead does, it applies
// the EXIF orientation and converts gray or 16-bit pictures to 8-bit BGR.
func OpenImage(path string) (*Image, error) {
	// Reading the file here rather than in OpenCV reports why it cannot
	// be read, and keeps OpenCV's warnings about it off stderr.
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	bgr, err := gocv.IMDecode(data, gocv.IMReadColor)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	if bgr.Empty() {
		bgr.Close()
		return nil, fmt.Errorf("decode %s: not an image format OpenCV reads", path)
	}
	return &Image{
		bgr:      bgr,
		luma:     gocv.NewMat(),
		color:    gocv.NewMat(),
		scaled:   gocv.NewMat(),
		analyzer: newAnalyzer(),
	}, nil
}

// Analyze measures the photograph as Decoder.Analyze measures a frame. Its
// luma is BT.601 full range, as JPEG defines it; the colours are measured
// on an area resize, as swscale's is for frames.
func (im *Image) Analyze(darkThreshold float64) (imagestats.Stats, error) {
	gocv.CvtColor(im.bgr, &im.luma, gocv.ColorBGRToGray)
	w, h := colorSize(im.bgr.Cols(), im.bgr.Rows())
	gocv.Resize(im.bgr, &im.color, image.Pt(w, h), 0, 0, gocv.InterpolationArea)
	return im.analyzer.measure(im.luma, im.color, darkThreshold)
}

// Picture returns the photograph as packed BGR scaled to width x height
// (INTER_AREA) in a newly allocated Image, like Decoder.Picture.
func (im *Image) Picture(width, height int) (video.Image, error) {
	if width <= 0 || height <= 0 || width > maxPictureSide || height > maxPictureSide {
		return video.Image{}, fmt.Errorf("picture size %dx%d out of range", width, height)
	}
	gocv.Resize(im.bgr, &im.scaled, image.Pt(width, height), 0, 0, gocv.InterpolationArea)
	pix, err := im.scaled.DataPtrUint8()
	if err != nil {
		return video.Image{}, err
	}
	return video.Image{
		Width:  width,
		Height: height,
		Stride: 3 * width,
		Pix:    append([]byte(nil), pix...),
	}, nil
}

// Close frees the Image's Mats; it must not be used afterwards.
func (im *Image) Close() {
	im.bgr.Close()
	im.luma.Close()
	im.color.Close()
	im.scaled.Close()
	im.analyzer.close()
}
