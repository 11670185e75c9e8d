package e2e

import (
	"fmt"
	"image"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"

	"github.com/camera-exporter/camera_exporter/camera/decode"
	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
	"github.com/camera-exporter/camera_exporter/drift"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
	"github.com/camera-exporter/camera_exporter/video"
)

// The cameras of TestFrozen film person.jpg (640x424) at frozenFPS. Their
// clips hold at least 12 distinct key frames, more than the 8 pictures the
// exporter compares a new one with, so that the server's loop over a clip
// does not pass for a camera repeating its pictures.
const (
	frozenFPS        = 10
	frozenShortGOP   = 2  // frames: a key frame every 0.2 s
	frozenLongGOP    = 20 // frames: a key frame every 2 s
	frozenLongFrames = 240
	// A clip with short GOPs holds 60 key frames, 12 s: more than the 8
	// distinct pictures the exporter compares span, even when a loaded
	// machine analyzes one a second instead of four.
	frozenShortFrames = 120
)

// The cameras that film a figure walking over a still picture (dog.jpg,
// 768x576) send walkerFrames frames, the slowest figures
// slowWalkerFrames: each figure passes a block once before the server
// loops its clip.
const (
	walkerFrames     = 300
	slowWalkerFrames = 450
)

// The two bitrates of the frozen cameras, at 640x424 and frozenFPS: 5 to 7
// bits per pixel per key frame. Below the lower one a still picture's key
// frames differ by as much as sensor noise of one level makes them (x265
// at 4.5 Mbit/s with 0.2 s GOPs, 4 bits per pixel: up to 0.29 level; see
// drift.StillLimit).
var frozenBitrates = []string{"6000k", "12000k"}

// yuvPhoto is a photograph as raw 4:2:0 planes.
type yuvPhoto struct {
	w, h      int
	y, cb, cr []byte
}

// loadYUVPhoto decodes a JPEG into 4:2:0 planes, averaging its chroma
// down from whatever subsampling it has (person.jpg is 4:4:0).
func loadYUVPhoto(t testing.TB, name string) *yuvPhoto {
	t.Helper()
	f, err := os.Open(filepath.Join(sharedImages, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := jpeg.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	yc, ok := img.(*image.YCbCr)
	if !ok {
		t.Fatalf("%s is not YCbCr but %T", name, img)
	}
	p := &yuvPhoto{w: yc.Rect.Dx() &^ 1, h: yc.Rect.Dy() &^ 1}
	p.y = make([]byte, 0, p.w*p.h)
	for y := range p.h {
		p.y = append(p.y, yc.Y[yc.YOffset(0, y):][:p.w]...)
	}
	for y := range p.h / 2 {
		for x := range p.w / 2 {
			var cb, cr int
			for _, d := range [4][2]int{{0, 0}, {1, 0}, {0, 1}, {1, 1}} {
				o := yc.COffset(2*x+d[0], 2*y+d[1])
				cb, cr = cb+int(yc.Cb[o]), cr+int(yc.Cr[o])
			}
			p.cb, p.cr = append(p.cb, byte((cb+2)/4)), append(p.cr, byte((cr+2)/4))
		}
	}
	return p
}

// writeNoisy writes frames frames of the photo as raw yuv420p, with
// Gaussian noise of standard deviation std levels added to the luma of
// each frame, as a sensor adds to a still scene; it returns the file and
// the standard deviation of the noise actually added, after clamping.
// std 0 writes one frame, for ffmpeg to loop.
func (p *yuvPhoto) writeNoisy(t testing.TB, std float64, frames int) (string, float64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), fmt.Sprintf("noise%g.yuv", std))
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if std == 0 {
		frames = 1
	}
	rng := rand.New(rand.NewPCG(1, uint64(std*10)))
	luma := make([]byte, len(p.y))
	var sum2 float64
	for range frames {
		for i, v := range p.y {
			n := min(max(math.Round(float64(v)+std*rng.NormFloat64()), 0), 255)
			d := n - float64(v)
			sum2 += d * d
			luma[i] = byte(n)
		}
		for _, plane := range [][]byte{luma, p.cb, p.cr} {
			if _, err := f.Write(plane); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path, math.Sqrt(sum2 / float64(frames*len(p.y)))
}

// keyFrames counts the access units of a clip that start a GOP.
func keyFrames(m *rtsptest.Media) int {
	var n int
	for _, au := range m.AccessUnits {
		if slices.ContainsFunc(au, func(nalu []byte) bool {
			if m.Codec == rtsptest.H264 {
				return h264.NALUType(nalu[0]&0x1f) == h264.NALUTypeIDR
			}
			typ := h265.NALUType((nalu[0] >> 1) & 0x3f)
			return typ >= h265.NALUType_BLA_W_LP && typ <= h265.NALUType_CRA_NUT
		}) {
			n++
		}
	}
	return n
}

// TestFrozen is the acceptance test of camera_frame_frozen: a still
// picture re-encoded reads frozen, with or without a clock drawn over it;
// the same picture under sensor noise, a moving scene, a still picture
// with one small figure moving over it, under a clock or not, and real
// footage of a few people walking, by day and night, never do.
func TestFrozen(t *testing.T) {
	if raceEnabled {
		// The shares of scrapes are what this measures, and they depend
		// on how many key frames the analyses see: slowed down several
		// times, they see too few of each looped clip's, whose repeats
		// then read frozen.
		t.Skip("measures scrape shares at full speed; run without -race")
	}
	testutil.NeedFootage(t)
	start := time.Now()
	photo := loadYUVPhoto(t, "person.jpg")
	size := fmt.Sprintf("%dx%d", photo.w, photo.h)
	stds := []float64{0, 1, 2, 3}
	raws := map[float64]string{}
	for _, std := range stds {
		path, got := photo.writeNoisy(t, std, frozenLongFrames)
		raws[std] = path
		t.Logf("noise of std %g levels: %.3f added", std, got)
		if math.Abs(got-std) > 0.05*std {
			t.Fatalf("noise of std %g levels came out at %.3f", std, got)
		}
	}

	type clip struct {
		name    string
		codec   rtsptest.Codec
		bitrate string
		gop     int
		input   []string
		vf      string
		frozen  bool
		frames  int // 0: by the GOP
		pixels  int // of its pictures; 0: person.jpg's
	}
	raw := func(std float64) []string {
		in := []string{"-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", size, "-r", fmt.Sprint(frozenFPS)}
		if std == 0 {
			in = append(in, "-stream_loop", "-1")
		}
		return append(in, "-i", raws[std])
	}
	codecName := map[rtsptest.Codec]string{rtsptest.H264: "x264", rtsptest.H265: "x265"}
	var clips []clip
	for _, codec := range []rtsptest.Codec{rtsptest.H264, rtsptest.H265} {
		for _, gop := range []int{frozenShortGOP, frozenLongGOP} {
			for _, bitrate := range frozenBitrates {
				clips = append(clips, clip{fmt.Sprintf("frozen-%s-%s-g%d", codecName[codec], bitrate, gop), codec, bitrate, gop, raw(0), "", true, 0, 0})
			}
			// Sensor noise at the coarsest coding: std 1 for every codec
			// and GOP, 2 and 3 with x264's short GOPs (the long GOPs of
			// noisy frames take longest to encode).
			for _, std := range stds[1:] {
				if std == 1 || codec == rtsptest.H264 && gop == frozenShortGOP {
					clips = append(clips, clip{fmt.Sprintf("noise%g-%s-%s-g%d", std, codecName[codec], frozenBitrates[0], gop), codec, frozenBitrates[0], gop, raw(std), "", false, 0, 0})
				}
			}
		}
	}
	// A clock that changes every second in the top right corner, as
	// cameras draw theirs, over the frozen picture.
	clock := "drawtext=fontfile=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf:fontsize=20:fontcolor=white:box=1:boxcolor=black:x=w-tw-8:y=8:" +
		`text='%{pts\:gmtime\:0\:%H\\\:%M\\\:%S}'`
	clips = append(clips,
		clip{"clock-x264-" + frozenBitrates[0] + "-g20", rtsptest.H264, frozenBitrates[0], frozenLongGOP, raw(0), clock, true, 0, 0},
		clip{"clock-x265-" + frozenBitrates[0] + "-g2", rtsptest.H265, frozenBitrates[0], frozenShortGOP, raw(0), clock, true, 0, 0},
		clip{"moving-x264-" + frozenBitrates[0] + "-g20", rtsptest.H264, frozenBitrates[0], frozenLongGOP,
			[]string{"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=s=%s:r=%d", size, frozenFPS)}, "", false, 0, 0},
	)
	// A figure of w x h pixels, dark gray as people are on camera, moving
	// over a still yard (768x576) from x, y at vx, vy pixels a second,
	// across its edges and in again: a site at night with one worker in
	// view. The camera's key frame every second (frozenFPS frames) is the
	// x264 default of cameras that send one a second.
	walker := func(w, h int, x, y, vx, vy float64, filters string) []string {
		return []string{
			"-loop", "1", "-framerate", fmt.Sprint(frozenFPS), "-i", filepath.Join(sharedImages, "dog.jpg"),
			"-f", "lavfi", "-i", fmt.Sprintf("color=c=0x303030:s=%dx%d:r=%d", w, h, frozenFPS),
			"-filter_complex", fmt.Sprintf("[0][1]overlay=x='mod(%g+%g*t,%d)-%d':y='mod(%g+%g*t,%d)-%d'%s",
				x, vx, 768+w, w, y, vy, 576+h, h, filters),
		}
	}
	yard := []string{"-loop", "1", "-framerate", fmt.Sprint(frozenFPS), "-i", filepath.Join(sharedImages, "dog.jpg")}
	h264 := func(name string, gop, frames int, input []string, vf string, frozen bool) clip {
		return clip{name, rtsptest.H264, frozenBitrates[0], gop, input, vf, frozen, frames, 768 * 576}
	}
	clips = append(clips,
		// Across the picture and out, in 19.8 s, then in again.
		h264("walker-24x60-40px-g10", frozenFPS, 198, walker(24, 60, 0, 380, 40, 0, ""), "", false),
		h264("walker-24x60-10px-g10", frozenFPS, walkerFrames, walker(24, 60, 300, 300, 10, 0, ""), "", false),
		h264("walker-24x60-5px-g2", frozenShortGOP, slowWalkerFrames, walker(24, 60, 400, 420, 5, 0, ""), "", false),
		h264("walker-24x60-5px-g20", frozenLongGOP, slowWalkerFrames, walker(24, 60, 250, 350, -5, 0, ""), "", false),
		h264("walker-12x30-10px-g10", frozenFPS, walkerFrames, walker(12, 30, 400, 250, 10, 0, ""), "", false),
		h264("walker-48x120-12px-down-g10", frozenFPS, slowWalkerFrames, walker(48, 120, 600, 60, 0, 12, ""), "", false),
		h264("ball-32x32-25px-g10", frozenFPS, walkerFrames, walker(32, 32, 80, 80, 20, 15, ""), "", false),
		h264("walker-clock-24x60-10px-g10", frozenFPS, walkerFrames, walker(24, 60, 150, 400, 10, 0, ","+clock), "", false),
		h264("walker-clock-24x60-5px-g2", frozenShortGOP, slowWalkerFrames, walker(24, 60, 650, 200, -5, 0, ","+clock), "", false),
		h264("clock-yard-g10", frozenFPS, walkerFrames, yard, clock, true),
		// A worker at a bench mid-picture, swaying 30 pixels either way
		// every 5 s: in place, but no overlay.
		h264("worker-24x60-in-place-g10", frozenFPS, walkerFrames, []string{
			"-loop", "1", "-framerate", fmt.Sprint(frozenFPS), "-i", filepath.Join(sharedImages, "dog.jpg"),
			"-f", "lavfi", "-i", fmt.Sprintf("color=c=0x303030:s=24x60:r=%d", frozenFPS),
			"-filter_complex", "[0][1]overlay=x='370+30*sin(2*PI*t/5)':y=260",
		}, "", false),
		// Real footage of a fixed camera, a few people walking across a
		// square, as filmed and darkened to a night (a fifth of the light,
		// sensor noise).
		h264("footage-g10", frozenFPS, 300, []string{"-i", testutil.FootagePath}, "", false),
		h264("footage-night-g10", frozenFPS, 300, []string{"-i", testutil.FootagePath}, "lutyuv=y=16+(val-16)/5,noise=alls=3:allf=t", false),
	)

	// Two encodes at a time keep both cores busy through ffmpeg's serial
	// parts.
	media := make([]*rtsptest.Media, len(clips))
	errs := make([]error, len(clips))
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for i, c := range clips {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			frames := c.frames
			switch {
			case frames > 0:
			case c.gop == frozenShortGOP:
				frames = frozenShortFrames
			default:
				frames = frozenLongFrames
			}
			extra := []string{"-g", fmt.Sprint(c.gop), "-b:v", c.bitrate}
			if c.codec == rtsptest.H265 {
				// The default preset takes 3 to 4 times longer, for
				// the same separation.
				extra = append(extra, "-preset", "ultrafast")
			}
			if c.vf != "" {
				extra = append(extra, "-vf", c.vf)
			}
			media[i], errs[i] = rtsptest.Encode(t.Context(), t.TempDir(), c.codec, frozenFPS, frames, c.input, extra...)
		})
	}
	wg.Wait()
	for _, std := range stds {
		os.Remove(raws[std])
	}
	clipsByName := map[string]*rtsptest.Media{}
	for i, c := range clips {
		if errs[i] != nil {
			t.Fatalf("%s: %v", c.name, errs[i])
		}
		m := media[i]
		keys := keyFrames(m)
		var keyBits, keyN float64
		for _, au := range m.AccessUnits {
			if keyFrames(&rtsptest.Media{Codec: m.Codec, AccessUnits: [][][]byte{au}}) == 1 {
				for _, nalu := range au {
					keyBits += float64(8 * len(nalu))
				}
				keyN++
			}
		}
		pixels := c.pixels
		if pixels == 0 {
			pixels = photo.w * photo.h
		}
		t.Logf("%-28s %d key frames, %.2f bits per pixel per key frame", c.name, keys, keyBits/keyN/float64(pixels))
		if want := len(m.AccessUnits) / c.gop; keys < max(12, want) {
			t.Fatalf("%s has %d key frames, want at least %d and 12", c.name, keys, want)
		}
		clipsByName[c.name] = m
	}
	t.Logf("encoded %d clips in %s", len(clips), time.Since(start).Round(100*time.Millisecond))
	for _, c := range clips {
		// Under a clock, the clock's blocks change by far the most.
		if c.frozen && c.vf == "" {
			t.Logf("%-28s largest block change %.2f of a changed block's threshold, over its key frames and the 8 before each", c.name, largestStillChange(t, clipsByName[c.name]))
		}
	}

	srv, err := rtsptest.Start(rtsptest.Options{}, clipsByName)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cfg := "cameras:\n"
	for _, c := range clips {
		cfg += fmt.Sprintf("  - name: %s\n    url: %s\n", c.name, srv.URL(c.name))
	}
	e := startExporter(t, cfg, "--collector.image.min-interval=0s")

	// Scrapes drive the analyses: each decodes the camera's latest key
	// frame if it is new. Established: every camera compared two
	// pictures, then the frozen cameras' clocks learned as overlay, then
	// three of the long GOPs more.
	const interval = 250 * time.Millisecond
	testutil.WaitFor(t, "every camera's frame difference", 60*time.Second, func() bool {
		m, _ := e.get("/metrics", nil)
		return strings.Count(m, "camera_frame_difference_ratio{") == len(clips)
	})
	testutil.WaitFor(t, "the frozen cameras to read frozen", 120*time.Second, func() bool {
		m, _ := e.get("/metrics", nil)
		for _, c := range clips {
			if frozen, _ := sample(m, fmt.Sprintf(`camera_frame_frozen{camera=%q}`, c.name)); c.frozen && frozen != 1 {
				time.Sleep(interval) // scrapes drive the analyses, at their pace
				return false
			}
		}
		return true
	})
	for settle := time.Now().Add(3 * frozenLongGOP * time.Second / frozenFPS); time.Now().Before(settle); time.Sleep(interval) {
		e.get("/metrics", nil) //nolint:errcheck // scrapes drive the analyses
	}

	// 25 s of scrapes: 12 key frames of the long GOPs, about 100 of the
	// short ones.
	const scrapes = 100
	type tally struct {
		frozen, n int
		lo, hi    float64
		scrapes   strings.Builder // 1 frozen, 0 not, - no value
	}
	tallies := make([]tally, len(clips))
	for i := range tallies {
		tallies[i].lo = math.Inf(1)
	}
	for range scrapes {
		next := time.Now().Add(interval)
		m, err := e.get("/metrics", nil)
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range clips {
			frozen, ok := sample(m, fmt.Sprintf(`camera_frame_frozen{camera=%q}`, c.name))
			diff, dok := sample(m, fmt.Sprintf(`camera_frame_difference_ratio{camera=%q}`, c.name))
			tl := &tallies[i]
			if !ok || !dok {
				tl.scrapes.WriteByte('-')
				continue
			}
			tl.n++
			tl.scrapes.WriteByte('0' + byte(frozen))
			if frozen == 1 {
				tl.frozen++
			}
			tl.lo, tl.hi = min(tl.lo, diff*255), max(tl.hi, diff*255)
		}
		time.Sleep(time.Until(next))
	}

	var table strings.Builder
	fmt.Fprintf(&table, "%-28s %7s %6s  %s\n", "camera", "frozen", "want", "difference (levels)")
	for i, c := range clips {
		tl := &tallies[i]
		share := float64(tl.frozen) / float64(max(tl.n, 1))
		want := "0"
		if c.frozen {
			want = ">=95%"
		}
		fmt.Fprintf(&table, "%-28s %6.0f%% %6s  %.2f to %.2f\n", c.name, 100*share, want, tl.lo, tl.hi)
		switch {
		case tl.n < scrapes*9/10:
			t.Errorf("%s: a frame difference in %d of %d scrapes", c.name, tl.n, scrapes)
		case c.frozen && share < 0.95:
			t.Errorf("%s read frozen in %d of %d scrapes, want at least 95%%: %s", c.name, tl.frozen, tl.n, tl.scrapes.String())
		case !c.frozen && tl.frozen > 0:
			t.Errorf("%s read frozen in %d of %d scrapes, want none: %s", c.name, tl.frozen, tl.n, tl.scrapes.String())
		}
	}
	t.Logf("after %d scrapes every %s:\n%s", scrapes, interval, table.String())
	t.Logf("TestFrozen took %s", time.Since(start).Round(100*time.Millisecond))
}

// largestStillChange decodes a clip's key frames and returns the largest
// LargestChange of drift.CompareStill between each and the 8 before it:
// the margin of a frozen clip's coding noise below a changed block.
func largestStillChange(t *testing.T, m *rtsptest.Media) float64 {
	t.Helper()
	dec, err := decode.New(video.Codec(m.Codec))
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	var recent [][]uint8
	var largest float64
	for _, au := range m.AccessUnits {
		if keyFrames(&rtsptest.Media{Codec: m.Codec, AccessUnits: [][][]byte{au}}) == 0 {
			continue
		}
		if err := dec.DecodeKeyframe(au); err != nil {
			t.Fatal(err)
		}
		stats, err := dec.Analyze(0.15)
		if err != nil {
			t.Fatal(err)
		}
		sig := append([]uint8(nil), stats.Signature...) // the decoder's may be reused
		for _, prev := range recent {
			s, _ := drift.CompareStill(prev, sig)
			largest = max(largest, s.LargestChange)
		}
		recent = append(recent, sig)
		recent = recent[max(len(recent)-8, 0):]
	}
	return largest
}
