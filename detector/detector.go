// Package detector holds what the exporter needs to know about object
// detection without cgo: the Detector interface, the Options that describe
// a detector with their defaults and validation, how a picture is placed in
// a network's input, and how each family of models encodes its detections.
// The OpenCV DNN implementation lives in detector/dnn.
package detector

import (
	"context"
	"time"

	"github.com/camera-exporter/camera_exporter/video"
)

// Backends a detector can be asked to run on: OpenCV's own CPU code, or its
// CUDA backend in full or half precision.
const (
	BackendCPU      = "cpu"
	BackendCUDA     = "cuda"
	BackendCUDAFP16 = "cuda_fp16"
)

// Box is an axis-aligned rectangle in pixels.
type Box struct {
	X, Y, Width, Height float32
}

// Detection is one object found in a picture, in the picture's pixels.
type Detection struct {
	Class      int    // index into the labels
	Label      string // the class name, or the index if the labels have none
	Confidence float32
	Box        Box
}

// Result is what one pass of a detector found.
type Result struct {
	Detections []Detection
	// Duration is the time the detector spent on the picture: preparing
	// the input, the forward pass and decoding, not waiting for a network.
	Duration time.Duration
}

// Info describes a loaded detector, for camera_detector_info.
type Info struct {
	Model  string // base name of the model file
	Layout Layout
	// Backend and Target are what really runs, in OpenCV's terms:
	// backend "opencv" or "cuda", target "cpu", "cuda" or "cuda_fp16".
	Backend, Target string
	// Requested is the backend the configuration asked for; it differs
	// from what runs after a CPU fallback.
	Requested               string
	InputWidth, InputHeight int
	// Rewrites say how the model's graph was changed in memory so that
	// OpenCV can run it, one line each; empty if it runs as it is.
	Rewrites []string
}

// Detector finds objects in pictures. It is safe for concurrent use.
type Detector interface {
	// Place tells how a source picture of srcW x srcH pixels must be scaled
	// before it is given to Detect.
	Place(srcW, srcH int) Placement
	// Detect runs the network on pic, a srcW x srcH source picture already
	// scaled to Place(srcW, srcH).Width x Height, and returns detections in
	// source pixels. It waits for a free network no longer than ctx allows.
	Detect(ctx context.Context, pic video.Image, srcW, srcH int) (Result, error)
	// Labels are the class names, indexed by class.
	Labels() []string
	Info() Info
	// Close frees the networks once the detections in flight are done.
	Close()
}
