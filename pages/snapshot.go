package pages

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"sync"

	"golang.org/x/image/draw"
	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/camera-exporter/camera_exporter/detector"
	"github.com/camera-exporter/camera_exporter/drift"
	"github.com/camera-exporter/camera_exporter/imagestats"
	"github.com/camera-exporter/camera_exporter/video"
)

// Bounds of the width parameter of the pictures. A picture is never
// wider than the one analyses keep (SnapshotWidth).
const (
	minWidth = 16
	maxWidth = 1920
	// SnapshotWidth is the widest and tallest that the pictures analyses
	// keep for the pages are: one picture a camera, 480x270 BGR for 16:9
	// is 389 KB.
	SnapshotWidth = 480
)

// Bounds of every picture the pages draw, whatever the proportions of the
// camera's picture or reference: a reference of 16x16384 pixels drawn 1920
// wide would be 1920x1966080.
const (
	maxPictureSide   = maxWidth
	maxPicturePixels = 1920 * 1440
)

const jpegQuality = 80

// boxColor stands out of most scenes, day and night.
var boxColor = color.RGBA{R: 255, G: 200, A: 255}

// render encodes a camera's analyzed picture as JPEG, width pixels wide at
// most, with the detector's boxes and labels drawn when boxes is set.
// srcW and srcH are the size of the picture the boxes are in.
func render(snap video.Image, dets []detector.Detection, srcW, srcH int, boxes bool, width int) ([]byte, error) {
	img := bgrToRGBA(snap)
	if boxes && srcW > 0 && srcH > 0 {
		drawDetections(img, dets, float64(snap.Width)/float64(srcW), float64(snap.Height)/float64(srcH))
	}
	return encode(scaled(img, fit(snap.Width, snap.Height, min(width, snap.Width))))
}

// bgrToRGBA copies a BGR picture into a new RGBA one.
func bgrToRGBA(p video.Image) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, p.Width, p.Height))
	for y := range p.Height {
		src := p.Pix[y*p.Stride : y*p.Stride+3*p.Width]
		dst := img.Pix[y*img.Stride : y*img.Stride+4*p.Width]
		for x := range p.Width {
			dst[4*x], dst[4*x+1], dst[4*x+2], dst[4*x+3] = src[3*x+2], src[3*x+1], src[3*x], 255
		}
	}
	return img
}

// drawDetections draws each detection's box, two pixels wide, and its
// label and confidence above it, or inside it at the top of the picture.
func drawDetections(img *image.RGBA, dets []detector.Detection, sx, sy float64) {
	face := basicfont.Face7x13
	for _, d := range dets {
		r := image.Rect(int(float64(d.Box.X)*sx), int(float64(d.Box.Y)*sy),
			int(float64(d.Box.X+d.Box.Width)*sx), int(float64(d.Box.Y+d.Box.Height)*sy)).Intersect(img.Rect)
		if r.Empty() {
			continue
		}
		for i := range 2 {
			outline(img, r.Inset(i))
		}
		label := fmt.Sprintf("%s %.0f%%", d.Label, 100*d.Confidence)
		textW := font.MeasureString(face, label).Ceil()
		top := r.Min.Y - face.Height
		if top < 0 {
			top = r.Min.Y
		}
		bg := image.Rect(r.Min.X, top, r.Min.X+textW+4, top+face.Height).Intersect(img.Rect)
		draw.Draw(img, bg, image.NewUniform(boxColor), image.Point{}, draw.Src)
		(&font.Drawer{Dst: img, Src: image.Black, Face: face,
			Dot: fixed.P(r.Min.X+2, top+face.Ascent)}).DrawString(label)
	}
}

// outline draws the border of r.
func outline(img *image.RGBA, r image.Rectangle) {
	if r.Empty() {
		return
	}
	for x := r.Min.X; x < r.Max.X; x++ {
		img.SetRGBA(x, r.Min.Y, boxColor)
		img.SetRGBA(x, r.Max.Y-1, boxColor)
	}
	for y := r.Min.Y; y < r.Max.Y; y++ {
		img.SetRGBA(r.Min.X, y, boxColor)
		img.SetRGBA(r.Max.X-1, y, boxColor)
	}
}

// fit is the size of a picture of the proportions of srcW x srcH, width
// pixels wide or narrower: as narrow as it takes for the picture to be at
// most maxPictureSide pixels on each side and maxPicturePixels in all. A
// side is at least a pixel.
func fit(srcW, srcH, width int) image.Point {
	aspect := float64(srcH) / float64(srcW) // height per width
	w := min(float64(min(width, maxPictureSide)), maxPictureSide/aspect, math.Sqrt(maxPicturePixels/aspect))
	w = max(math.Floor(w), 1)
	// Rounded, so that 160 wide of 320x180 is 90 high, not 89.9999.
	h := min(max(math.Round(w*aspect), 1), maxPictureSide)
	if w*h > maxPicturePixels {
		h--
	}
	return image.Pt(int(w), int(h))
}

// scaled returns img at size, which fit gave.
func scaled(img image.Image, size image.Point) image.Image {
	b := img.Bounds()
	if size == b.Size() {
		return img
	}
	out := image.NewRGBA(image.Rectangle{Max: size})
	draw.ApproxBiLinear.Scale(out, out.Rect, img, b, draw.Src, nil)
	return out
}

func encode(img image.Image) ([]byte, error) {
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: jpegQuality}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// referenceSize is the size of p's view drawn width pixels wide or
// narrower (fit): of the reference's proportions, or the signature's in
// files that have none.
func referenceSize(p *drift.Profile, width int) image.Point {
	if p.Width > 0 && p.Height > 0 {
		return fit(p.Width, p.Height, width)
	}
	return fit(imagestats.SignatureWidth, imagestats.SignatureHeight, width)
}

// referenceImage is a reference's view, its mean scene signature, as a
// gray picture of size.
func referenceImage(p *drift.Profile, size image.Point) image.Image {
	sig := image.NewGray(image.Rect(0, 0, imagestats.SignatureWidth, imagestats.SignatureHeight))
	for i, v := range p.Signature {
		sig.Pix[i] = uint8(min(max(v, 0), 1)*255 + 0.5)
	}
	out := image.NewGray(image.Rectangle{Max: size})
	draw.BiLinear.Scale(out, out.Rect, sig, sig.Rect, draw.Src, nil)
	return out
}

// cache keeps each camera's latest encoded picture, keyed by what it was
// made from: a page of thumbnails asks for each once per analyzed frame,
// or reference.
type cache struct {
	mu      sync.Mutex
	entries map[string]cached // by camera; one picture each
}

type cached struct {
	key  cacheKey
	jpeg []byte
}

// cacheKey is a snapshot's analyzed frame, boxes and width, or a
// reference's profile and size.
type cacheKey struct {
	seq       uint64
	boxes     bool
	width     int
	reference *drift.Profile
	size      image.Point
}

// get returns the camera's picture for key, making it with produce when the
// cached one is another's. Two requests may make it at once; the cache
// keeps one.
func (c *cache) get(camera string, key cacheKey, produce func() ([]byte, error)) ([]byte, error) {
	c.mu.Lock()
	e, ok := c.entries[camera]
	c.mu.Unlock()
	if ok && e.key == key {
		return e.jpeg, nil
	}
	b, err := produce()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.entries[camera] = cached{key: key, jpeg: b}
	c.mu.Unlock()
	return b, nil
}

// forget drops the cameras not in names, removed by a reload.
func (c *cache) forget(names map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name := range c.entries {
		if !names[name] {
			delete(c.entries, name)
		}
	}
}
