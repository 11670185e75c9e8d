package decode

import (
	"errors"
	"fmt"
	"image"
	"math"
	"os"
	"testing"

	"gocv.io/x/gocv"

	"github.com/camera-exporter/camera_exporter/video"
)

// bgr is a color in Image's channel order.
type bgr [3]float64

func (c bgr) hex() string {
	return fmt.Sprintf("0x%02x%02x%02x", int(c[2]), int(c[1]), int(c[0]))
}

// meanBGR returns the mean of each channel of img, checking its layout.
func meanBGR(t *testing.T, img video.Image) bgr {
	t.Helper()
	if img.Stride != 3*img.Width || len(img.Pix) != img.Stride*img.Height {
		t.Fatalf("%dx%d image with stride %d and %d bytes, want stride %d and %d bytes",
			img.Width, img.Height, img.Stride, len(img.Pix), 3*img.Width, 3*img.Width*img.Height)
	}
	var sum bgr
	for i, v := range img.Pix {
		sum[i%3] += float64(v)
	}
	n := float64(img.Width * img.Height)
	return bgr{sum[0] / n, sum[1] / n, sum[2] / n}
}

func picture(t *testing.T, d *Decoder, width, height int) video.Image {
	t.Helper()
	img, err := d.Picture(width, height)
	if err != nil {
		t.Fatal(err)
	}
	if img.Width != width || img.Height != height {
		t.Fatalf("picture %dx%d, want %dx%d", img.Width, img.Height, width, height)
	}
	return img
}

// TestPictureColors checks that each stream's range and YUV matrix are
// honored. The clips are made from RGB with the matrix and range given, as
// a camera would, and tagged or not.
func TestPictureColors(t *testing.T) {
	// Red tells the matrices apart, light gray and dark blue the ranges.
	var (
		red      = bgr{0, 0, 255}
		gray     = bgr{192, 192, 192}
		darkBlue = bgr{96, 24, 16}
		colors   = []bgr{red, gray, darkBlue}
	)
	for _, tc := range []struct {
		name   string
		codec  video.Codec
		size   string
		matrix string // used to make YUV from RGB
		tag    string // the colorspace signaled, if any
		pixFmt string // overrides the one rtsptest.Encode picks
		colors []bgr  // all of colors if empty
	}{
		{name: "untagged SD", codec: video.CodecH264, size: "320x240", matrix: "bt601"},
		{name: "untagged HD", codec: video.CodecH264, size: "1280x720", matrix: "bt709"},
		{name: "full range", codec: video.CodecH264, size: "320x240", matrix: "bt601", pixFmt: "yuvj420p"},
		{name: "BT.601", codec: video.CodecH265, size: "320x240", matrix: "bt601", tag: "smpte170m"},
		{name: "BT.709", codec: video.CodecH265, size: "320x240", matrix: "bt709", tag: "bt709"},
		{name: "BT.601 HD", codec: video.CodecH265, size: "1280x720", matrix: "bt601", tag: "bt470bg"},
		{name: "10 bit", codec: video.CodecH265, size: "320x240", matrix: "bt709", tag: "bt709", pixFmt: "yuv420p10le"},
		{name: "gray", codec: video.CodecH265, size: "320x240", matrix: "bt709", pixFmt: "gray", colors: []bgr{gray}},
		{name: "JPEG", codec: video.CodecMJPEG, size: "320x240", matrix: "bt601", pixFmt: "yuvj420p"},
		{name: "JPEG HD", codec: video.CodecMJPEG, size: "1280x720", matrix: "bt601", pixFmt: "yuvj420p"},
	} {
		pixFmt := tc.pixFmt
		if pixFmt == "" {
			pixFmt = "yuv420p"
		}
		outRange := "tv"
		if tc.pixFmt == "yuvj420p" {
			outRange = "pc"
		}
		var extra []string
		if tc.pixFmt != "" {
			extra = append(extra, "-pix_fmt", tc.pixFmt)
		}
		if tc.tag != "" {
			extra = append(extra, "-colorspace", tc.tag)
		}
		var w, h int
		if _, err := fmt.Sscanf(tc.size, "%dx%d", &w, &h); err != nil {
			t.Fatal(err)
		}
		if tc.colors == nil {
			tc.colors = colors
		}
		for _, want := range tc.colors {
			t.Run(fmt.Sprintf("%s/%s/%s", tc.codec, tc.name, want.hex()), func(t *testing.T) {
				graph := fmt.Sprintf("color=c=%s:s=%s,format=rgb24,scale=out_color_matrix=%s:out_range=%s,format=%s",
					want.hex(), tc.size, tc.matrix, outRange, pixFmt)
				aus := encode(t, tc.codec, 1, lavfi(graph), extra...)
				d := newDecoder(t, tc.codec)
				if err := d.DecodeKeyframe(aus[0]); err != nil {
					t.Fatal(err)
				}
				got := meanBGR(t, picture(t, d, w/2, h/2))
				for i := range got {
					if !near(got[i], want[i], 6) {
						t.Errorf("mean BGR %.1f, want %v", got, want)
						break
					}
				}
			})
		}
	}
}

// TestPictureScale checks that shrinking keeps the content in place, that
// the scaler follows size changes, and that each Image is the caller's own.
func TestPictureScale(t *testing.T) {
	aus := encode(t, video.CodecH264, 1, lavfi("color=white:s=1920x1080,drawbox=x=960:y=0:w=960:h=1080:color=black:t=fill"))
	small := encode(t, video.CodecH264, 1, lavfi("color=black:s=320x240"))
	d := newDecoder(t, video.CodecH264)
	if err := d.DecodeKeyframe(aus[0]); err != nil {
		t.Fatal(err)
	}
	var first video.Image
	for _, size := range [][2]int{{320, 180}, {320, 320}, {320, 180}, {97, 31}} {
		w, h := size[0], size[1]
		img := picture(t, d, w, h)
		if first.Pix == nil {
			first = img
		}
		meanBGR(t, img) // checks the layout
		// The columns next to the edge may blend; all others are pure.
		for y := range h {
			for x := range w {
				edge := float64(x) + 0.5 - float64(w)/2
				if math.Abs(edge) < 2 {
					continue
				}
				want := 255.0
				if edge > 0 {
					want = 0
				}
				for c, v := range img.Pix[y*img.Stride+3*x : y*img.Stride+3*x+3] {
					if !near(float64(v), want, 3) {
						t.Fatalf("%dx%d: pixel (%d, %d) channel %d is %d, want %v", w, h, x, y, c, v, want)
					}
				}
			}
		}
	}

	// A smaller stream in the same decoder, as after a camera's reconfiguration.
	if err := d.DecodeKeyframe(small[0]); err != nil {
		t.Fatal(err)
	}
	if got := meanBGR(t, picture(t, d, 320, 180)); got[0]+got[1]+got[2] > 3 {
		t.Errorf("mean BGR %.1f after switching streams, want black", got)
	}
	if got := meanBGR(t, first); got[0] < 127 || got[0] > 128 {
		t.Errorf("first picture changed by later ones: mean blue %.1f, want 127.5", got[0])
	}
}

func TestPictureErrors(t *testing.T) {
	for _, codec := range codecs {
		d := newDecoder(t, codec)
		if _, err := d.Picture(320, 240); !errors.Is(err, video.ErrNoPicture) {
			t.Errorf("%s: Picture before decoding: got %v, want ErrNoPicture", codec, err)
		}
	}

	aus := encode(t, video.CodecH264, 1, lavfi("color=gray:s=320x240"))
	d := newDecoder(t, video.CodecH264)
	if err := d.DecodeKeyframe(aus[0]); err != nil {
		t.Fatal(err)
	}
	for _, size := range [][2]int{{0, 240}, {320, 0}, {-1, 240}, {320, -1}, {8193, 240}, {320, 8193}} {
		if _, err := d.Picture(size[0], size[1]); err == nil {
			t.Errorf("Picture(%d, %d) succeeded, want error", size[0], size[1])
		}
	}
	// Failures leave the decoder usable.
	picture(t, d, 160, 120)
}

// TestPicturePhoto compares Picture of a re-encoded photo with OpenCV's own
// decoding and area resize of it.
func TestPicturePhoto(t *testing.T) {
	const path = "../../../shared/images/person.jpg" // 640x424
	if _, err := os.Stat(path); err != nil {
		t.Skip(err)
	}
	photo := gocv.IMRead(path, gocv.IMReadColor)
	defer photo.Close()
	if photo.Empty() {
		t.Fatalf("cannot read %s", path)
	}
	const w, h = 320, 212
	want := gocv.NewMat()
	defer want.Close()
	gocv.Resize(photo, &want, image.Pt(w, h), 0, 0, gocv.InterpolationArea)

	for _, codec := range []video.Codec{video.CodecH264, video.CodecMJPEG} {
		t.Run(string(codec), func(t *testing.T) {
			aus := encode(t, codec, 1, []string{"-i", path})
			d := newDecoder(t, codec)
			if err := d.DecodeKeyframe(aus[0]); err != nil {
				t.Fatal(err)
			}
			img := picture(t, d, w, h)
			got, err := gocv.NewMatFromBytes(h, w, gocv.MatTypeCV8UC3, img.Pix)
			if err != nil {
				t.Fatal(err)
			}
			defer got.Close()
			diff := gocv.NewMat()
			defer diff.Close()
			gocv.AbsDiff(got, want, &diff)
			mad := diff.Mean()
			for c, v := range []float64{mad.Val1, mad.Val2, mad.Val3} {
				if v > 8 {
					t.Errorf("channel %d differs by %.2f on average, want at most 8", c, v)
				}
			}
			t.Logf("mean absolute difference BGR %.2f %.2f %.2f", mad.Val1, mad.Val2, mad.Val3)
		})
	}
}

// BenchmarkPicture measures shrinking a 1080p picture to common network
// input sizes.
func BenchmarkPicture(b *testing.B) {
	au := benchClip(b, video.CodecH264, 1)[0]
	for _, size := range [][2]int{{320, 180}, {320, 320}} {
		b.Run(fmt.Sprintf("%dx%d", size[0], size[1]), func(b *testing.B) {
			d := newDecoder(b, video.CodecH264)
			if err := d.DecodeKeyframe(au); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := d.Picture(size[0], size[1]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
