package decode

import (
	"errors"
	"fmt"
	"image"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"github.com/camera-exporter/camera_exporter/imagestats"
	"github.com/camera-exporter/camera_exporter/video"
)

// sharedImage returns the path of one of the shared test photos, which live
// outside the repository and are only read.
func sharedImage(t *testing.T, name string) string {
	t.Helper()
	path := filepath.Join("../../../shared/images", name)
	if _, err := os.Stat(path); err != nil {
		t.Skip(err)
	}
	return path
}

// filtered writes src through the ffmpeg filter graph vf into a new file.
// BMP is lossless and, unlike PNG, carries no copy of the JPEG's colour
// profile for libpng to warn about.
func filtered(t *testing.T, src, vf string) string {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not found")
	}
	path := filepath.Join(t.TempDir(), "filtered.bmp")
	cmd := exec.Command("ffmpeg", "-y", "-loglevel", "error", "-nostdin", "-i", src, "-vf", vf, path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, out)
	}
	return path
}

func openImage(t *testing.T, path string) *Image {
	t.Helper()
	im, err := OpenImage(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(im.Close)
	return im
}

func analyzeImage(t *testing.T, path string) imagestats.Stats {
	t.Helper()
	stats, err := openImage(t, path).Analyze(0.15)
	if err != nil {
		t.Fatal(err)
	}
	return stats
}

// photoStats encodes a photo as a one frame clip of codec and analyzes its
// key frame.
func photoStats(t *testing.T, codec video.Codec, path string) imagestats.Stats {
	t.Helper()
	// libx264 needs even dimensions.
	aus := encode(t, codec, 1, []string{"-i", path}, "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2")
	d := newDecoder(t, codec)
	if err := d.DecodeKeyframe(aus[0]); err != nil {
		t.Fatal(err)
	}
	return analyze(t, d, 0.15)
}

// signatureDistance is the mean absolute difference of two signatures, in
// 8-bit levels.
func signatureDistance(t *testing.T, a, b []uint8) float64 {
	t.Helper()
	const n = imagestats.SignatureWidth * imagestats.SignatureHeight
	if len(a) != n || len(b) != n {
		t.Fatalf("signatures of %d and %d samples, want %d", len(a), len(b), n)
	}
	sum := 0
	for i := range a {
		sum += max(int(a[i])-int(b[i]), int(b[i])-int(a[i]))
	}
	return float64(sum) / n
}

func logStats(t *testing.T, name string, s imagestats.Stats) {
	t.Helper()
	t.Logf("%s: %dx%d brightness %.4f contrast %.4f dark %.4f overexposed %.4f sharpness %.6f edges %.4f saturation %.4f RGB %.4f %.4f %.4f",
		name, s.Width, s.Height, s.Brightness, s.Contrast, s.DarkRatio, s.OverexposedRatio,
		s.Sharpness, s.EdgeDensity, s.Saturation, s.Red, s.Green, s.Blue)
}

// flatClip is a clip of one colour and what its statistics must be.
type flatClip struct {
	color, size string
	overexposed float64
	saturation  float64
	want        bgr
}

var (
	flatGray   = flatClip{color: "0x808080", size: "320x240", want: bgr{128, 128, 128}}
	flatWhite  = flatClip{color: "white", size: "320x240", overexposed: 1, want: bgr{255, 255, 255}}
	flatRed    = flatClip{color: "red", size: "320x240", saturation: 1, want: bgr{0, 0, 255}}
	flatGrayHD = flatClip{color: "0x808080", size: "1920x1080", want: bgr{128, 128, 128}}
)

// TestStatsFlat checks the statistics of flat pictures in every codec and
// pixel format: no detail at all, and colours as sent. 1080p takes the
// shrinking and the scaled colour conversion that smaller pictures skip.
func TestStatsFlat(t *testing.T) {
	for _, tc := range []struct {
		codec  video.Codec
		pixFmt string // overrides the one rtsptest.Encode picks
		clips  []flatClip
	}{
		{codec: video.CodecH264, clips: []flatClip{flatGray, flatWhite, flatRed, flatGrayHD}},
		{codec: video.CodecH265, clips: []flatClip{flatGray, flatWhite, flatRed, flatGrayHD}},
		{codec: video.CodecMJPEG, clips: []flatClip{flatGray, flatWhite, flatRed, flatGrayHD}},
		{codec: video.CodecH264, pixFmt: "yuvj420p", clips: []flatClip{flatGray, flatWhite, flatRed}},
		{codec: video.CodecH265, pixFmt: "yuv420p10le", clips: []flatClip{flatGray, flatWhite, flatRed}},
		{codec: video.CodecH265, pixFmt: "gray", clips: []flatClip{flatGray, flatWhite}},
		{codec: video.CodecMJPEG, pixFmt: "yuvj422p", clips: []flatClip{flatGray, flatWhite, flatRed}},
	} {
		var extra []string
		if tc.pixFmt != "" {
			extra = []string{"-pix_fmt", tc.pixFmt}
		}
		for _, clip := range tc.clips {
			t.Run(fmt.Sprintf("%s/%s/%s/%s", tc.codec, tc.pixFmt, clip.color, clip.size), func(t *testing.T) {
				aus := encode(t, tc.codec, 1, lavfi(fmt.Sprintf("color=c=%s:s=%s", clip.color, clip.size)), extra...)
				d := newDecoder(t, tc.codec)
				if err := d.DecodeKeyframe(aus[0]); err != nil {
					t.Fatal(err)
				}
				s := analyze(t, d, 0.15)
				if s.Sharpness > 1e-6 || s.EdgeDensity != 0 {
					t.Errorf("sharpness %g, edge density %g, want 0", s.Sharpness, s.EdgeDensity)
				}
				if !near(s.OverexposedRatio, clip.overexposed, 0.001) {
					t.Errorf("overexposed %.4f, want %v", s.OverexposedRatio, clip.overexposed)
				}
				if !near(s.Saturation, clip.saturation, 0.02) {
					t.Errorf("saturation %.4f, want %v", s.Saturation, clip.saturation)
				}
				// Codecs and conversions round pure colours by a level.
				got := bgr{s.Blue * 255, s.Green * 255, s.Red * 255}
				for i := range got {
					if !near(got[i], clip.want[i], 1.5) {
						t.Errorf("mean BGR %.1f, want %v", got, clip.want)
						break
					}
				}
				// A flat picture's signature is its luma everywhere.
				luma := math.Round(s.Brightness * 255)
				for i, v := range s.Signature {
					if !near(float64(v), luma, 1) {
						t.Fatalf("signature sample %d is %d, want %v", i, v, luma)
					}
				}
			})
		}
	}
}

// TestImageLevels checks, on exact pixel values, where the dark and
// overexposed pixels start: 0.15*255 = 38.25 and 0.95*255 = 242.25.
func TestImageLevels(t *testing.T) {
	for _, tc := range []struct {
		level             int
		dark, overexposed float64
	}{
		{level: 0, dark: 1},
		{level: 38, dark: 1},
		{level: 39},
		{level: 242},
		{level: 243, overexposed: 1},
		{level: 255, overexposed: 1},
	} {
		t.Run(fmt.Sprint(tc.level), func(t *testing.T) {
			v := float64(tc.level)
			m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(v, v, v, 0), 240, 320, gocv.MatTypeCV8UC3)
			defer m.Close()
			path := filepath.Join(t.TempDir(), "flat.png")
			if !gocv.IMWrite(path, m) {
				t.Fatalf("cannot write %s", path)
			}
			s := analyzeImage(t, path)
			if !near(s.Brightness, v/255, 1e-9) || s.DarkRatio != tc.dark || s.OverexposedRatio != tc.overexposed {
				t.Errorf("brightness %v, dark %v, overexposed %v; want %v, %v, %v",
					s.Brightness, s.DarkRatio, s.OverexposedRatio, v/255, tc.dark, tc.overexposed)
			}
		})
	}
}

// TestStatsPhoto compares the statistics of a photo decoded from MJPEG and
// H264 key frames with those of the photo itself: the Decoder and the Image
// must agree, so that a reference built from photos fits the streams.
func TestStatsPhoto(t *testing.T) {
	path := sharedImage(t, "person.jpg")
	want := analyzeImage(t, path)
	logStats(t, "image", want)
	for _, tc := range []struct {
		codec video.Codec
		// Sharpness and edge density lose to compression what its
		// quantization takes off fine detail: MJPEG at -q:v 3 little,
		// H264 at libx264's default CRF 23 about 8% and 3% here.
		sharpness, edges float64 // relative tolerances
	}{
		{codec: video.CodecMJPEG, sharpness: 0.05, edges: 0.03},
		{codec: video.CodecH264, sharpness: 0.15, edges: 0.06},
	} {
		t.Run(string(tc.codec), func(t *testing.T) {
			got := photoStats(t, tc.codec, path)
			logStats(t, string(tc.codec), got)
			// Levels and colour means only move by rounding: they
			// differ by 0.002 at most here.
			for _, c := range []struct {
				name           string
				got, want, tol float64
			}{
				{"brightness", got.Brightness, want.Brightness, 0.005},
				{"contrast", got.Contrast, want.Contrast, 0.005},
				{"dark ratio", got.DarkRatio, want.DarkRatio, 0.005},
				{"overexposed ratio", got.OverexposedRatio, want.OverexposedRatio, 0.002},
				{"saturation", got.Saturation, want.Saturation, 0.01},
				{"red", got.Red, want.Red, 0.005},
				{"green", got.Green, want.Green, 0.005},
				{"blue", got.Blue, want.Blue, 0.005},
				{"sharpness", got.Sharpness, want.Sharpness, tc.sharpness * want.Sharpness},
				{"edge density", got.EdgeDensity, want.EdgeDensity, tc.edges * want.EdgeDensity},
			} {
				if !near(c.got, c.want, c.tol) {
					t.Errorf("%s %.5f, want %.5f ± %.5f", c.name, c.got, c.want, c.tol)
				}
			}
			if got.Width != want.Width || got.Height != want.Height {
				t.Errorf("size %dx%d, want %dx%d", got.Width, got.Height, want.Width, want.Height)
			}
			// Compression noise mostly averages out at this size.
			dist := signatureDistance(t, got.Signature, want.Signature)
			t.Logf("signature differs by %.2f levels on average", dist)
			if dist > 2 {
				t.Errorf("signature differs by %.2f levels on average, want at most 2", dist)
			}
		})
	}
}

// TestStatsBlur checks that a blurred photo, as through a defocused or
// fogged lens, loses most of its sharpness and edges, whichever way it
// comes.
func TestStatsBlur(t *testing.T) {
	// Both go through the same conversions on their way to the codecs.
	path := filtered(t, sharedImage(t, "person.jpg"), "null")
	blurred := filtered(t, path, "gblur=sigma=4")
	for _, tc := range []struct {
		name  string
		stats func(path string) imagestats.Stats
	}{
		{"image", func(path string) imagestats.Stats { return analyzeImage(t, path) }},
		{"mjpeg", func(path string) imagestats.Stats { return photoStats(t, video.CodecMJPEG, path) }},
		{"h264", func(path string) imagestats.Stats { return photoStats(t, video.CodecH264, path) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sharp, blur := tc.stats(path), tc.stats(blurred)
			logStats(t, "sharp", sharp)
			logStats(t, "blurred", blur)
			// Measured: sharpness 0.017 to 0.018 against 0.00025 to
			// 0.0003 (60 to 70 times), edge density 0.19 to 0.2
			// against 0.025 (8 times).
			if sharp.Sharpness < 20*blur.Sharpness {
				t.Errorf("sharpness %.6f blurred %.6f, want a drop by 20 times at least", sharp.Sharpness, blur.Sharpness)
			}
			if sharp.EdgeDensity < 4*blur.EdgeDensity {
				t.Errorf("edge density %.4f blurred %.4f, want a drop by 4 times at least", sharp.EdgeDensity, blur.EdgeDensity)
			}
			// Blurring moves no light.
			if !near(sharp.Brightness, blur.Brightness, 0.005) {
				t.Errorf("brightness %.4f blurred %.4f, want equal", sharp.Brightness, blur.Brightness)
			}
		})
	}
}

// TestStatsDarkened checks a photo taken in less light.
func TestStatsDarkened(t *testing.T) {
	path := filtered(t, sharedImage(t, "person.jpg"), "null")
	dark := filtered(t, path, "eq=brightness=-0.3")
	for _, tc := range []struct {
		name  string
		stats func(path string) imagestats.Stats
	}{
		{"image", func(path string) imagestats.Stats { return analyzeImage(t, path) }},
		{"mjpeg", func(path string) imagestats.Stats { return photoStats(t, video.CodecMJPEG, path) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, after := tc.stats(path), tc.stats(dark)
			logStats(t, "photo", before)
			logStats(t, "darkened", after)
			// eq takes about a third off luma, less where it clips at
			// black.
			if drop := before.Brightness - after.Brightness; drop < 0.25 {
				t.Errorf("brightness %.4f darkened %.4f, want a drop of 0.25 at least", before.Brightness, after.Brightness)
			}
			if after.DarkRatio < before.DarkRatio+0.1 {
				t.Errorf("dark ratio %.4f darkened %.4f, want a rise of 0.1 at least", before.DarkRatio, after.DarkRatio)
			}
			if before.OverexposedRatio == 0 || after.OverexposedRatio != 0 {
				t.Errorf("overexposed ratio %.4f darkened %.4f, want some, then none", before.OverexposedRatio, after.OverexposedRatio)
			}
		})
	}
}

// TestSignature checks that signatures tell views apart and repeat for the
// same picture, and that callers own them.
func TestSignature(t *testing.T) {
	person := sharedImage(t, "person.jpg")
	giraffe := sharedImage(t, "giraffe.jpg")
	dist := signatureDistance(t, analyzeImage(t, person).Signature, analyzeImage(t, giraffe).Signature)
	t.Logf("person and giraffe signatures differ by %.1f levels on average", dist)
	if dist < 40 {
		t.Errorf("person and giraffe signatures differ by %.1f levels on average, want 40 at least", dist)
	}

	for _, codec := range codecs {
		t.Run(string(codec), func(t *testing.T) {
			// A still view, as a frozen stream sends it.
			aus := encode(t, codec, 10, []string{"-loop", "1", "-i", person})
			keyframe := func() []uint8 {
				d := newDecoder(t, codec)
				if err := d.DecodeKeyframe(aus[0]); err != nil {
					t.Fatal(err)
				}
				return analyze(t, d, 0.15).Signature
			}
			first := keyframe()
			if !slices.Equal(keyframe(), first) {
				t.Error("two decodes of the key frame give different signatures")
			}

			d := newDecoder(t, codec)
			decodeAll(t, d, aus)
			last := analyze(t, d, 0.15).Signature
			if dist := signatureDistance(t, last, first); dist > 0.5 {
				t.Errorf("signatures of the key frame and the last frame differ by %.2f levels on average, want at most 0.5", dist)
			}

			// Analyzing another picture leaves a kept signature alone.
			kept := slices.Clone(last)
			black := encode(t, codec, 1, lavfi("color=black:s=640x424"))
			if err := d.DecodeKeyframe(black[0]); err != nil {
				t.Fatal(err)
			}
			analyze(t, d, 0.15)
			if !slices.Equal(last, kept) {
				t.Error("Analyze changed an earlier signature")
			}
		})
	}
}

func TestOpenImageErrors(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.jpg")
	empty := filepath.Join(dir, "empty.png")
	if err := os.WriteFile(text, []byte("not a picture\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		is   error
	}{
		{path: filepath.Join(dir, "missing.jpg"), is: fs.ErrNotExist},
		{path: text},
		{path: empty},
		{path: dir},
	} {
		im, err := OpenImage(tc.path)
		if err == nil {
			im.Close()
			t.Errorf("OpenImage(%s) succeeded, want error", tc.path)
			continue
		}
		if !strings.Contains(err.Error(), tc.path) {
			t.Errorf("OpenImage(%s): error %q does not name the file", tc.path, err)
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("OpenImage(%s): got %v, want %v", tc.path, err, tc.is)
		}
	}
}

// TestImagePicture compares an Image's picture with the decoder's of the
// same photo, and checks that each one is the caller's own.
func TestImagePicture(t *testing.T) {
	path := sharedImage(t, "person.jpg") // 640x424
	im := openImage(t, path)
	aus := encode(t, video.CodecMJPEG, 1, []string{"-i", path})
	d := newDecoder(t, video.CodecMJPEG)
	if err := d.DecodeKeyframe(aus[0]); err != nil {
		t.Fatal(err)
	}
	for _, size := range [][2]int{{320, 212}, {416, 416}, {97, 31}} {
		w, h := size[0], size[1]
		got, err := im.Picture(w, h)
		if err != nil {
			t.Fatal(err)
		}
		if got.Width != w || got.Height != h {
			t.Fatalf("picture %dx%d, want %dx%d", got.Width, got.Height, w, h)
		}
		before := meanBGR(t, got) // checks the layout
		want := meanBGR(t, picture(t, d, w, h))
		for i := range before {
			if !near(before[i], want[i], 2) {
				t.Errorf("%dx%d: mean BGR %.1f, decoder's %.1f", w, h, before, want)
				break
			}
		}
		if _, err := im.Picture(w/2+1, h/2+1); err != nil {
			t.Fatal(err)
		}
		if after := meanBGR(t, got); after != before {
			t.Errorf("%dx%d picture changed by a later one: mean BGR %.1f, was %.1f", w, h, after, before)
		}
	}
	for _, size := range [][2]int{{0, 240}, {320, 0}, {-1, 240}, {8193, 240}} {
		if _, err := im.Picture(size[0], size[1]); err == nil {
			t.Errorf("Picture(%d, %d) succeeded, want error", size[0], size[1])
		}
	}
}

func TestAnalysisSize(t *testing.T) {
	for _, tc := range []struct{ w, h, aw, ah, cw, ch int }{
		{1920, 1080, 320, 180, 160, 90},
		{2688, 1520, 320, 181, 160, 90},
		{640, 424, 320, 212, 160, 106},
		{320, 240, 320, 240, 160, 120},
		{160, 120, 160, 120, 80, 60}, // never upscaled
		{1, 1, 1, 1, 1, 1},
		{8000, 10, 320, 1, 160, 1},
	} {
		aw, ah := analysisSize(tc.w, tc.h)
		cw, ch := colorSize(tc.w, tc.h)
		if aw != tc.aw || ah != tc.ah || cw != tc.cw || ch != tc.ch {
			t.Errorf("%dx%d: analysis %dx%d, colour %dx%d; want %dx%d, %dx%d",
				tc.w, tc.h, aw, ah, cw, ch, tc.aw, tc.ah, tc.cw, tc.ch)
		}
	}
}

// TestShrink checks that shrinking by halves first gives INTER_AREA's
// result in one step: up to the rounding of the halved pictures where the
// factors are whole, which noise, the hardest case for averaging in steps,
// shows; nearly so otherwise, on a photo.
func TestShrink(t *testing.T) {
	photo := gocv.IMRead(sharedImage(t, "person.jpg"), gocv.IMReadGrayScale)
	defer photo.Close()
	for _, tc := range []struct {
		w, h      int
		noise     bool
		tolerance float64 // mean absolute difference, in levels
	}{
		{w: 1920, h: 1080, noise: true, tolerance: 0.5}, // halved once, then by 3
		{w: 2560, h: 1440, noise: true, tolerance: 0.5}, // halved 3 times
		{w: 700, h: 500, noise: true, tolerance: 0},     // in one step
		{w: 2688, h: 1520, tolerance: 1},                // by 8.4
	} {
		t.Run(fmt.Sprintf("%dx%d", tc.w, tc.h), func(t *testing.T) {
			src := gocv.NewMatWithSize(tc.h, tc.w, gocv.MatTypeCV8UC1)
			defer src.Close()
			if tc.noise {
				gocv.RandU(&src, gocv.NewScalar(0, 0, 0, 0), gocv.NewScalar(256, 0, 0, 0))
			} else {
				gocv.Resize(photo, &src, image.Pt(tc.w, tc.h), 0, 0, gocv.InterpolationCubic)
			}
			w, h := analysisSize(tc.w, tc.h)
			want := gocv.NewMat()
			defer want.Close()
			gocv.Resize(src, &want, image.Pt(w, h), 0, 0, gocv.InterpolationArea)

			a := newAnalyzer()
			defer a.close()
			a.shrink(src, w, h)
			diff := gocv.NewMat()
			defer diff.Close()
			gocv.AbsDiff(a.small, want, &diff)
			mad := diff.Mean().Val1
			t.Logf("differs from one INTER_AREA step by %.3f levels on average", mad)
			if mad > tc.tolerance {
				t.Errorf("differs from one INTER_AREA step by %.3f levels on average, want at most %v", mad, tc.tolerance)
			}
		})
	}
}

// BenchmarkAnalyze measures Analyze alone on decoded pictures of common
// camera sizes.
func BenchmarkAnalyze(b *testing.B) {
	for _, size := range []string{"1920x1080", "2688x1520"} {
		au := encode(b, video.CodecH264, 1, lavfi("testsrc2=r=25:s="+size))[0]
		b.Run(size, func(b *testing.B) {
			d := newDecoder(b, video.CodecH264)
			if err := d.DecodeKeyframe(au); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := d.Analyze(0.15); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
