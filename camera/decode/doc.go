// Package decode implements camera.Decoder with libavcodec through cgo.
//
// Each Decoder owns one single-threaded codec context, so the CPU spent per
// camera stays bounded and predictable. Only the latest decoded picture is
// kept; Analyze copies its luma plane into a reused gocv Mat, rescaled to full
// range 8-bit samples, and measures it with gocv. Picture converts it to BGR
// at the detector's input size with libswscale. Building this package needs
// the libavcodec, libavutil, libswscale and OpenCV development files; the
// rest of the exporter only sees the camera.Decoder interface.
package decode
