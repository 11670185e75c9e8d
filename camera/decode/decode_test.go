package decode

import (
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"gocv.io/x/gocv"

	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
	"github.com/camera-exporter/camera_exporter/imagestats"
	"github.com/camera-exporter/camera_exporter/video"
)

var codecs = []video.Codec{video.CodecH264, video.CodecH265, video.CodecMJPEG}

// encode returns the access units of a clip that ffmpeg encodes from input.
func encode(tb testing.TB, codec video.Codec, frames int, input []string, extra ...string) [][][]byte {
	tb.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		tb.Skip("ffmpeg not found")
	}
	m, err := rtsptest.Encode(tb.Context(), tb.TempDir(), rtsptest.Codec(codec), 25, frames, input, extra...)
	if err != nil {
		tb.Fatal(err)
	}
	return m.AccessUnits
}

func lavfi(graph string) []string {
	return []string{"-f", "lavfi", "-i", graph}
}

func newDecoder(tb testing.TB, codec video.Codec) *Decoder {
	tb.Helper()
	d, err := New(codec)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(d.Close)
	return d
}

func analyze(t *testing.T, d *Decoder, darkThreshold float64) imagestats.Stats {
	t.Helper()
	stats, err := d.Analyze(darkThreshold)
	if err != nil {
		t.Fatal(err)
	}
	return stats
}

func decodeAll(t *testing.T, d *Decoder, aus [][][]byte) {
	t.Helper()
	for i, au := range aus {
		if err := d.Decode(au); err != nil {
			t.Fatalf("access unit %d: %v", i, err)
		}
	}
}

func near(got, want, tolerance float64) bool {
	return math.Abs(got-want) <= tolerance
}

func TestNew(t *testing.T) {
	if _, err := New("vp8"); err == nil {
		t.Error("New(vp8) succeeded, want error")
	}
	for _, codec := range codecs {
		d := newDecoder(t, codec)
		if _, err := d.Analyze(0.1); !errors.Is(err, video.ErrNoPicture) {
			t.Errorf("%s: Analyze before decoding: got %v, want ErrNoPicture", codec, err)
		}
	}
}

// TestBrightness checks that limited range streams are stretched to full
// range: solid RGB gray 64 must read 64/255, not (16+64*219/255)/255.
func TestBrightness(t *testing.T) {
	for _, tc := range []struct {
		codec  video.Codec
		pixFmt string // overrides the one rtsptest.Encode picks
	}{
		{codec: video.CodecH264},
		{codec: video.CodecH265},
		{codec: video.CodecMJPEG},
		{codec: video.CodecH264, pixFmt: "yuvj420p"}, // full range VUI
		{codec: video.CodecH265, pixFmt: "yuv420p10le"},
		{codec: video.CodecH265, pixFmt: "gray"},
	} {
		var extra []string
		if tc.pixFmt != "" {
			extra = []string{"-pix_fmt", tc.pixFmt}
		}
		for _, level := range []int{0x40, 0xc8} {
			name := fmt.Sprintf("%s/%s/%#x", tc.codec, tc.pixFmt, level)
			aus := encode(t, tc.codec, 5, lavfi(fmt.Sprintf("color=c=0x%[1]x%[1]x%[1]x:s=320x240:r=25", level)), extra...)
			want := float64(level) / 255
			check := func(t *testing.T, d *Decoder) {
				stats := analyze(t, d, 0.15)
				if stats.Width != 320 || stats.Height != 240 {
					t.Errorf("size %dx%d, want 320x240", stats.Width, stats.Height)
				}
				if !near(stats.Brightness, want, 0.004) {
					t.Errorf("brightness %.4f, want %.4f", stats.Brightness, want)
				}
				if stats.Contrast > 0.01 {
					t.Errorf("contrast %.4f, want 0", stats.Contrast)
				}
			}
			t.Run(name+"/keyframe", func(t *testing.T) {
				d := newDecoder(t, tc.codec)
				if err := d.DecodeKeyframe(aus[0]); err != nil {
					t.Fatal(err)
				}
				check(t, d)
			})
			t.Run(name+"/stream", func(t *testing.T) {
				d := newDecoder(t, tc.codec)
				decodeAll(t, d, aus)
				check(t, d)
			})
		}
	}
}

func TestDarkRatio(t *testing.T) {
	for _, codec := range codecs {
		t.Run(string(codec), func(t *testing.T) {
			aus := encode(t, codec, 1, lavfi("color=white:s=320x240,drawbox=x=0:y=0:w=160:h=240:color=black:t=fill"))
			d := newDecoder(t, codec)
			if err := d.DecodeKeyframe(aus[0]); err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct{ threshold, want float64 }{{0.15, 0.5}, {0, 0}, {1.01, 1}} {
				if got := analyze(t, d, tc.threshold).DarkRatio; !near(got, tc.want, 0.01) {
					t.Errorf("threshold %v: dark ratio %.4f, want %v", tc.threshold, got, tc.want)
				}
			}
			if stats := analyze(t, d, 0.15); !near(stats.Brightness, 0.5, 0.01) || !near(stats.Contrast, 0.5, 0.01) {
				t.Errorf("brightness %.4f contrast %.4f, want 0.5 and 0.5", stats.Brightness, stats.Contrast)
			}
		})
	}
}

func TestPhoto(t *testing.T) {
	const path = "../../../shared/images/person.jpg"
	if _, err := os.Stat(path); err != nil {
		t.Skip(err)
	}
	gray := gocv.IMRead(path, gocv.IMReadGrayScale)
	defer gray.Close()
	if gray.Empty() {
		t.Fatalf("cannot read %s", path)
	}
	want := gray.Mean().Val1 / 255
	for _, codec := range []video.Codec{video.CodecH264, video.CodecMJPEG} {
		t.Run(string(codec), func(t *testing.T) {
			// libx264 needs even dimensions.
			aus := encode(t, codec, 1, []string{"-i", path}, "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2")
			d := newDecoder(t, codec)
			if err := d.DecodeKeyframe(aus[0]); err != nil {
				t.Fatal(err)
			}
			if got := analyze(t, d, 0.15).Brightness; !near(got, want, 0.01) {
				t.Errorf("brightness %.4f, want %.4f", got, want)
			}
		})
	}
}

// TestKeyframeBFrames decodes key frames of a B-frame stream that turns from
// black to white: each must come out at once, not one key frame late.
func TestKeyframeBFrames(t *testing.T) {
	for _, tc := range []struct {
		codec      video.Codec
		isKeyframe func([][]byte) bool
	}{
		{video.CodecH264, h264.IsRandomAccess},
		{video.CodecH265, h265.IsRandomAccess},
	} {
		t.Run(string(tc.codec), func(t *testing.T) {
			aus := encode(t, tc.codec, 20,
				lavfi("color=black:s=320x240:r=25,drawbox=color=white:t=fill:enable='gte(n,10)'"),
				"-bf", "3", "-g", "10")
			var keyframes [][][]byte
			for _, au := range aus {
				if tc.isKeyframe(au) {
					keyframes = append(keyframes, au)
				}
			}
			if len(keyframes) < 2 {
				t.Fatalf("%d key frames, want at least 2", len(keyframes))
			}
			d := newDecoder(t, tc.codec)
			if err := d.DecodeKeyframe(keyframes[0]); err != nil {
				t.Fatal(err)
			}
			if got := analyze(t, d, 0.15).Brightness; got > 0.02 {
				t.Errorf("first key frame: brightness %.4f, want black", got)
			}
			last := keyframes[len(keyframes)-1]
			if err := d.DecodeKeyframe(last); err != nil {
				t.Fatal(err)
			}
			if got := analyze(t, d, 0.15).Brightness; got < 0.98 {
				t.Errorf("last key frame: brightness %.4f, want white", got)
			}

			// The context accepts a continuous stream afterwards.
			decodeAll(t, d, aus)
			if got := analyze(t, d, 0.15).Brightness; got < 0.98 {
				t.Errorf("stream: brightness %.4f, want white", got)
			}
		})
	}
}

func TestGarbage(t *testing.T) {
	// Valid headers make the decoders parse the noise that follows.
	headers := map[video.Codec][]byte{
		video.CodecH264:  {0x65},                   // IDR slice
		video.CodecH265:  {0x26, 0x01},             // IDR_W_RADL slice
		video.CodecMJPEG: {0xff, 0xd8, 0xff, 0xdb}, // SOI, DQT
	}
	for _, codec := range codecs {
		t.Run(string(codec), func(t *testing.T) {
			garbage := append([]byte(nil), headers[codec]...)
			for i := range 4096 {
				garbage = append(garbage, byte(i*7919+i>>3))
			}
			d := newDecoder(t, codec)
			if err := d.DecodeKeyframe([][]byte{garbage}); err == nil {
				t.Error("DecodeKeyframe(garbage) succeeded, want error")
			}
			// Decoders may skip what they cannot parse; it must not crash.
			_ = d.Decode([][]byte{garbage})
			if _, err := d.Analyze(0.1); !errors.Is(err, video.ErrNoPicture) {
				t.Errorf("Analyze after garbage: got %v, want ErrNoPicture", err)
			}
			if err := d.Decode(nil); err == nil {
				t.Error("Decode(empty) succeeded, want error")
			}

			aus := encode(t, codec, 1, lavfi("color=c=0x404040:s=320x240"))
			if err := d.DecodeKeyframe(aus[0]); err != nil {
				t.Fatalf("key frame after garbage: %v", err)
			}
			if got := analyze(t, d, 0.15).Brightness; !near(got, 64.0/255, 0.004) {
				t.Errorf("brightness %.4f after garbage, want %.4f", got, 64.0/255)
			}
		})
	}
}

func benchClip(b *testing.B, codec video.Codec, frames int) [][][]byte {
	return encode(b, codec, frames, lavfi("testsrc2=s=1920x1080:r=25"), "-g", "50")
}

func BenchmarkDecodeKeyframe1080p(b *testing.B) {
	for _, codec := range []video.Codec{video.CodecH264, video.CodecH265} {
		au := benchClip(b, codec, 1)[0]
		b.Run(string(codec), func(b *testing.B) {
			d := newDecoder(b, codec)
			b.ReportAllocs()
			for b.Loop() {
				if err := d.DecodeKeyframe(au); err != nil {
					b.Fatal(err)
				}
				if _, err := d.Analyze(0.15); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodeAll1080p measures continuous decoding; one op is one frame.
func BenchmarkDecodeAll1080p(b *testing.B) {
	for _, codec := range []video.Codec{video.CodecH264, video.CodecH265} {
		aus := benchClip(b, codec, 50)
		b.Run(string(codec), func(b *testing.B) {
			d := newDecoder(b, codec)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := d.Decode(aus[i%len(aus)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// TestStretchLuma checks every level against the exact integer mapping of
// limited to full range.
func TestStretchLuma(t *testing.T) {
	m := gocv.NewMatWithSize(1, 256, gocv.MatTypeCV8UC1)
	defer m.Close()
	for v := range 256 {
		m.SetUCharAt(0, v, uint8(v))
	}
	stretchLuma(&m)
	for v := range 256 {
		s := min(max(v-16, 0), 219)
		if got, want := m.GetUCharAt(0, v), uint8((s*255+109)/219); got != want {
			t.Errorf("level %d: %d, want %d", v, got, want)
		}
	}
}

// damage returns a copy of au whose picture data (H264/H265 slices, the
// JPEG) is cut to 70% or has every seventh byte of its last two thirds
// flipped, as a lossy link delivers it.
func damage(codec video.Codec, au [][]byte, how string) [][]byte {
	var out [][]byte
	for _, n := range au {
		c := append([]byte(nil), n...)
		picture := codec == video.CodecMJPEG ||
			(codec == video.CodecH264 && c[0]&0x1f >= 1 && c[0]&0x1f <= 5) ||
			(codec == video.CodecH265 && (c[0]>>1)&0x3f < 32)
		switch {
		case picture && how == "truncated":
			c = c[:len(c)*7/10]
		case picture && how == "flipped":
			for i := len(c) / 3; i < len(c); i += 7 {
				c[i] ^= 0x5a
			}
		}
		out = append(out, c)
	}
	return out
}

// TestCorruptPicture checks that a damaged key frame is a decode error and
// that a damaged picture of a continuous stream is not analyzed as if it
// were good. libavcodec 59's HEVC decoder reports no damage: H265 is left
// out (see the README's known limitations).
func TestCorruptPicture(t *testing.T) {
	for _, tc := range []struct {
		codec video.Codec
		how   string
	}{
		{video.CodecH264, "truncated"},
		{video.CodecH264, "flipped"},
		{video.CodecMJPEG, "truncated"},
		{video.CodecMJPEG, "flipped"},
	} {
		t.Run(string(tc.codec)+" "+tc.how, func(t *testing.T) {
			aus := encode(t, tc.codec, 2, lavfi("testsrc2=s=320x240:r=25"))
			d := newDecoder(t, tc.codec)
			if err := d.DecodeKeyframe(damage(tc.codec, aus[0], tc.how)); err == nil {
				t.Error("a damaged key frame decoded without error")
			}
			// Continuous decoding conceals and goes on, but the concealed
			// picture is refused.
			if err := d.Decode(damage(tc.codec, aus[0], tc.how)); err == nil {
				if _, err := d.Analyze(0.15); err == nil {
					t.Error("a damaged picture was analyzed")
				}
			}
			// The next good key frame is analyzed again.
			if err := d.DecodeKeyframe(aus[0]); err != nil {
				t.Fatalf("good key frame after a damaged one: %v", err)
			}
			analyze(t, d, 0.15)
		})
	}
}

// TestMaxPixels checks the decoder's own bound, which holds whatever a
// stream announced: an 8K picture decodes, one of 41 MP does not. It is
// the codec context's, so the JPEGs, quick to encode at these sizes,
// stand for every codec.
func TestMaxPixels(t *testing.T) {
	for _, tc := range []struct {
		size string
		ok   bool
	}{
		{"7680x4320", true},
		{"6400x6400", false},
	} {
		t.Run(tc.size, func(t *testing.T) {
			aus := encode(t, video.CodecMJPEG, 1, lavfi("color=c=0x404040:s="+tc.size))
			d := newDecoder(t, video.CodecMJPEG)
			err := d.DecodeKeyframe(aus[0])
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				if got := analyze(t, d, 0.15).Brightness; !near(got, 64.0/255, 0.004) {
					t.Errorf("brightness %.4f, want %.4f", got, 64.0/255)
				}
				return
			}
			if err == nil {
				t.Error("DecodeKeyframe succeeded, want an error")
			}
			if _, err := d.Analyze(0.15); !errors.Is(err, video.ErrNoPicture) {
				t.Errorf("Analyze: got %v, want ErrNoPicture", err)
			}
		})
	}
}
