package testutil

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// Python is Debian's interpreter, whose PyTorch and ONNX (python3-torch,
// python3-onnx) build the YOLO networks; a python3 earlier in $PATH, such
// as a pyenv shim, may have neither.
const Python = "/usr/bin/python3"

// here is the folder of this file, internal/testutil.
func here(tb testing.TB) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		tb.Fatal("cannot locate internal/testutil")
	}
	return filepath.Dir(file)
}

// yoloScript is the generator of the YOLO networks, next to this file.
func yoloScript(tb testing.TB) string {
	return filepath.Join(here(tb), "yolo", "yolo.py")
}

// cocoNames are the 80 COCO classes the networks of 80 classes name.
func cocoNames(tb testing.TB) string {
	return Shared(tb, "models", "yolo-fastest-1.1", "coco.names")
}

// NeedTorch skips the test without PyTorch and ONNX for Python, unless $CI
// is set, where it fails: CI installs them.
func NeedTorch(tb testing.TB) {
	tb.Helper()
	out, err := exec.Command(Python, "-c", "import torch, onnx").CombinedOutput()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("%s cannot import torch and onnx (.ci/deps installs python3-torch python3-onnx): %v\n%s", Python, err, out)
	if os.Getenv("CI") == "" {
		tb.Skip(msg)
	}
	tb.Fatal(msg)
}

// YOLOModels returns the paths of the ONNX networks of the specs (see
// yolo/yolo.py: "yolov8-o12-folded-320-c80"), built with seeded weights
// by PyTorch, normalized and calibrated on the picture of calibration for
// their input size (a YOLORequest without spec), the first time, and kept
// in the user's cache directory for later runs, under the hash of the
// generator and the pictures.
func YOLOModels(tb testing.TB, calibration map[int]YOLORequest, specs ...string) map[string]string {
	tb.Helper()
	NeedTorch(tb)
	script := yoloScript(tb)
	h := sha256.New()
	// The networks are what the generator makes of the class names and
	// the calibration pictures.
	for _, path := range []string{script, cocoNames(tb)} {
		src, err := os.ReadFile(path)
		if err != nil {
			tb.Fatal(err)
		}
		h.Write(src)
	}
	sizes := map[string]YOLORequest{}
	for size, req := range calibration {
		sizes[fmt.Sprint(size)] = req
	}
	calib, err := json.Marshal(sizes) // sorted by size
	if err != nil {
		tb.Fatal(err)
	}
	for _, size := range slices.Sorted(maps.Keys(sizes)) {
		pic, err := os.ReadFile(sizes[size].Picture)
		if err != nil {
			tb.Fatal(err)
		}
		fmt.Fprintf(h, "%s %d %d %d\n", size, sizes[size].Left, sizes[size].Top, len(pic))
		h.Write(pic)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "camera_exporter", "yolo", hex.EncodeToString(h.Sum(nil)[:8]))
	paths := map[string]string{}
	var missing []string
	for _, spec := range specs {
		paths[spec] = filepath.Join(dir, spec+".onnx")
		if _, err := os.Stat(paths[spec]); errors.Is(err, os.ErrNotExist) {
			missing = append(missing, spec)
		}
	}
	if len(missing) > 0 {
		calibFile := filepath.Join(tb.TempDir(), "calibration.json")
		if err := os.WriteFile(calibFile, calib, 0o600); err != nil {
			tb.Fatal(err)
		}
		// Built apart and renamed into the cache: the test binaries of
		// several packages may build the same networks at once.
		if err := os.MkdirAll(dir, 0o755); err != nil {
			tb.Fatal(err)
		}
		build, err := os.MkdirTemp(dir, "build-")
		if err != nil {
			tb.Fatal(err)
		}
		defer os.RemoveAll(build)
		args := append([]string{script, "build", "--out", build, "--calibration", calibFile,
			"--coco-names", cocoNames(tb)}, missing...)
		if out, err := exec.Command(Python, args...).CombinedOutput(); err != nil {
			tb.Fatalf("building YOLO networks %v: %v\n%s", missing, err, lastLines(out, 20))
		}
		for _, spec := range missing {
			if err := os.Rename(filepath.Join(build, spec+".onnx"), paths[spec]); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return paths
}

// YOLORequest asks for the reference detections of a network on a picture
// placed in its input: a binary PPM of the picture as placed, where it
// sits in the input, and the size of the source picture that boxes are
// given in.
type YOLORequest struct {
	Spec      string `json:"spec"`
	Picture   string `json:"picture"`
	Left      int    `json:"left"`
	Top       int    `json:"top"`
	SrcWidth  int    `json:"src_width"`
	SrcHeight int    `json:"src_height"`
}

// YOLODetection is one detection of the reference: a box X, Y, width,
// height in source pixels.
type YOLODetection struct {
	Class      int        `json:"class"`
	Confidence float64    `json:"confidence"`
	Box        [4]float64 `json:"box"`
}

// YOLOReference returns, for each request, the detections of PyTorch's
// forward of the whole, unmodified network, decoded by the generator's
// own decoder (threshold 0.25, class-wise NMS at IoU 0.45). The network is
// the one YOLOModels built if the request's picture is the one it was
// calibrated on.
func YOLOReference(tb testing.TB, reqs []YOLORequest) [][]YOLODetection {
	tb.Helper()
	NeedTorch(tb)
	in, err := json.Marshal(reqs)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(Python, yoloScript(tb), "reference")
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("reference detections: %v\n%s", err, lastLines(stderr.Bytes(), 20))
	}
	var results []struct {
		Detections []YOLODetection `json:"detections"`
	}
	if err := json.Unmarshal(out, &results); err != nil || len(results) != len(reqs) {
		tb.Fatalf("reference detections: %d results for %d requests: %v", len(results), len(reqs), err)
	}
	dets := make([][]YOLODetection, len(results))
	for i, r := range results {
		dets[i] = r.Detections
	}
	return dets
}

// lastLines is the end of a command's output, for a failure message.
func lastLines(out []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
