// Package video holds what camera, its decoder camera/decode, the detector
// and the operator pages all speak of: a camera's codec, the BGR picture
// handed to the detector and the pages, and the one error of a camera
// without a picture yet. It imports none of them, so that each can use
// these types without importing another: camera knows nothing of the
// detector, and camera/decode does not import its parent.
package video

import "errors"

// Codec is the video format a camera sends.
type Codec string

// The codecs the exporter understands.
const (
	CodecH264  Codec = "h264"
	CodecH265  Codec = "h265"
	CodecMJPEG Codec = "mjpeg"
)

// Image is a picture in packed 8-bit BGR, OpenCV's channel order: pixel
// (x, y) is Pix[y*Stride+3*x : y*Stride+3*x+3].
type Image struct {
	Width, Height, Stride int
	Pix                   []byte
}

// ErrNoPicture is the error of an analysis before a picture to analyze:
// before the camera sent a frame that decodes, or before the decoder made
// a picture of those it was given. Callers that count failures excuse it.
var ErrNoPicture = errors.New("no picture yet")
