package testutil

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// YOLOPatternModels returns the paths of the ONNX networks of the specs
// (see YOLOModels), calibrated on a synthetic picture of their input
// size: for tests that load them, read them or rewrite them, but do not
// compare their detections with a photograph's.
func YOLOPatternModels(tb testing.TB, specs ...string) map[string]string {
	tb.Helper()
	calibration := map[int]YOLORequest{}
	for _, spec := range specs {
		var size int
		if parts := strings.Split(spec, "-"); len(parts) < 4 {
			tb.Fatalf("spec %s: not FAMILY-oOPSET-ANCHORS-SIZE-cCLASSES", spec)
		} else if _, err := fmt.Sscan(parts[3], &size); err != nil {
			tb.Fatalf("spec %s: %v", spec, err)
		}
		if _, ok := calibration[size]; !ok {
			calibration[size] = YOLORequest{Picture: patternPPM(tb, size), SrcWidth: size, SrcHeight: size}
		}
	}
	return YOLOModels(tb, calibration, specs...)
}

// patternPPM writes a size x size binary PPM of diagonal color bands, the
// same bytes every time, so that YOLOModels' cache keeps the networks.
func patternPPM(tb testing.TB, size int) string {
	tb.Helper()
	var b bytes.Buffer
	fmt.Fprintf(&b, "P6\n%d %d\n255\n", size, size)
	for y := range size {
		for x := range size {
			b.Write([]byte{byte(x*3 + y), byte(x + y*5), byte((x ^ y) * 7)})
		}
	}
	path := filepath.Join(tb.TempDir(), fmt.Sprintf("pattern-%d.ppm", size))
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// WritePPM writes a w x h picture of packed BGR rows stride bytes apart
// as a binary PPM, which holds RGB, for the YOLO generator to read, and
// returns its path.
func WritePPM(tb testing.TB, w, h, stride int, bgr []byte) string {
	tb.Helper()
	var b bytes.Buffer
	fmt.Fprintf(&b, "P6\n%d %d\n255\n", w, h)
	for y := range h {
		row := bgr[y*stride : y*stride+3*w]
		for x := 0; x < len(row); x += 3 {
			b.Write([]byte{row[x+2], row[x+1], row[x]})
		}
	}
	path := filepath.Join(tb.TempDir(), fmt.Sprintf("%dx%d.ppm", w, h))
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}
