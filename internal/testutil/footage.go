package testutil

import (
	"fmt"
	"math"
	"os"
	"testing"
)

// FootagePath is real footage of a fixed outdoor camera, people walking
// across a square, 768x576 at 10 fps, that Debian's opencv-doc installs.
const FootagePath = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"

// FootageW and FootageH are the footage's size.
const FootageW, FootageH = 768, 576

// NeedFootage skips the test without the footage, unless $CI is set, where
// it fails: CI installs it.
func NeedFootage(tb testing.TB) {
	tb.Helper()
	if _, err := os.Stat(FootagePath); err != nil {
		if os.Getenv("CI") == "" {
			tb.Skipf("real footage missing (.ci/deps installs opencv-doc): %v", err)
		}
		tb.Fatalf("real footage missing, which CI needs (.ci/deps installs opencv-doc): %v", err)
	}
}

// FootageCamera is a camera filming the footage's scene: it turns the
// scene by Rot degrees counterclockwise about the footage's centre, then
// shows the window Zoom times smaller than the footage whose top left
// corner is at (X0, Y0) of the footage's width and height, at the
// footage's size.
type FootageCamera struct {
	Zoom, Rot, X0, Y0 float64
}

// Filter is the ffmpeg filter that films the camera's view.
func (c FootageCamera) Filter() string {
	f := ""
	if c.Rot != 0 {
		// ffmpeg's rotate turns clockwise for a positive angle.
		f = fmt.Sprintf("rotate=%g*PI/180,", -c.Rot)
	}
	// exact: the luma's window where asked, not moved to even pixels for
	// the chroma's sake.
	return f + fmt.Sprintf("crop=%.0f:%.0f:%.0f:%.0f:exact=1,scale=%d:%d", FootageW/c.Zoom, FootageH/c.Zoom,
		c.X0*FootageW, c.Y0*FootageH, FootageW, FootageH)
}

// Relative is the truth a view registration measures: how the camera's
// view relates to the reference camera's (which does not turn), as shift
// (in fractions of the picture), zoom and roll. A footage point f shows in
// a camera at z·(m + R(rot)(f − m) − o), m the footage's centre, o the
// window's corner, z the window's zoom.
func (c FootageCamera) Relative(ref FootageCamera) (dx, dy, scale, rot float64) {
	mx, my := FootageW/2.0, FootageH/2.0
	window := func(c FootageCamera) (ox, oy, z float64) { // whole pixels, as cropped
		return math.Round(c.X0 * FootageW), math.Round(c.Y0 * FootageH), FootageW / math.Round(FootageW/c.Zoom)
	}
	rx, ry, rz := window(ref)
	ox, oy, z := window(c)
	sin, cos := math.Sincos(c.Rot * math.Pi / 180)
	turn := func(x, y float64) (float64, float64) { return cos*x + sin*y, -sin*x + cos*y }
	scale = z / rz
	// The reference's pixel p shows the footage's p/rz + (rx, ry), which
	// the camera shows at c + scale·R(rot)(p − c) + t, c the centre.
	ax, ay := turn(rx-mx, ry-my)
	bx, by := turn(mx, my)
	tx := z*(mx+ax-ox) - mx + scale*bx
	ty := z*(my+ay-oy) - my + scale*by
	return tx / FootageW, ty / FootageH, scale, c.Rot
}
