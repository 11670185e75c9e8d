// Package camera keeps one RTSP session per configured camera alive,
// depacketizes its video, tracks the latest key frame and decodes pictures
// for analysis. The cgo decoder lives in camera/decode behind the Decoder
// interface, so this package and its users build without cgo.
package camera

import (
	"errors"
	"time"

	"github.com/camera-exporter/camera_exporter/detector"
)

// Codec is the video format a camera sends.
type Codec string

// The codecs the exporter understands.
const (
	CodecH264  Codec = "h264"
	CodecH265  Codec = "h265"
	CodecMJPEG Codec = "mjpeg"
)

// ImageStats describes one analyzed picture. Luma values are on the full
// range scale (0 black, 1 white) whatever range the stream was coded in;
// colours are 0 to 1 too.
type ImageStats struct {
	Width, Height int
	// Brightness is the mean luma.
	Brightness float64
	// Contrast is the standard deviation of luma.
	Contrast float64
	// DarkRatio is the share of pixels whose luma is below the dark threshold.
	DarkRatio float64
	// OverexposedRatio is the share of pixels whose luma is at or above
	// OverexposedLuma: glare, a camera facing the sun.
	OverexposedRatio float64
	// Sharpness is the variance of the Laplacian of luma, on the picture
	// scaled to AnalysisWidth: 0 for a flat picture, about 0.02 for an
	// ordinary sharp view; a defocused, dirty or fogged lens lowers it (a
	// blur of 2 to 4 pixels divides it by 10 to 60).
	Sharpness float64
	// EdgeDensity is the share of edge pixels (Canny) at AnalysisWidth: a
	// covered lens or a blocked view lowers it.
	EdgeDensity float64
	// Saturation is the mean HSV saturation: 0 for gray, 1 for pure colours.
	// Night mode (infrared) pictures are gray.
	Saturation float64
	// Red, Green and Blue are the mean channel values: a colour cast sets
	// one apart.
	Red, Green, Blue float64
	// Signature is the luma scaled to SignatureWidth x SignatureHeight,
	// whatever the picture's aspect, to compare pictures of one camera: a
	// frozen stream repeats it, a moved camera's departs from its reference.
	Signature []uint8
}

// The scales of ImageStats.
const (
	OverexposedLuma = 0.95
	AnalysisWidth   = 320
	SignatureWidth  = 160
	SignatureHeight = 90
)

// Decoder turns access units into pictures and analyzes the latest one. An
// access unit is a list of NAL units without start codes (H264, H265) or a
// single JPEG image (MJPEG). A Decoder is used by one goroutine at a time.
type Decoder interface {
	// Decode feeds the next access unit of a continuous stream; the picture
	// it carries may come out later (B-frames).
	Decode(au [][]byte) error
	// DecodeKeyframe decodes one self-contained key frame (parameter sets
	// included) on its own, draining the decoder so its picture is ready now.
	DecodeKeyframe(au [][]byte) error
	// Analyze measures the latest decoded picture.
	Analyze(darkThreshold float64) (ImageStats, error)
	// Picture converts the latest decoded picture to BGR scaled to
	// width x height, for the detector, in a newly allocated Image.
	Picture(width, height int) (detector.Image, error)
	Close()
}

// NewDecoder creates a Decoder for a codec.
type NewDecoder func(Codec) (Decoder, error)

// ErrNoPicture is returned by Decoder.Analyze before any picture was decoded.
var ErrNoPicture = errors.New("no picture decoded yet")

// ErrNoFrame is returned by Stream.Analyze while no decodable frame arrived.
var ErrNoFrame = errors.New("no frame received yet")

// Status is a snapshot of a stream's counters, safe to read at scrape time.
type Status struct {
	Connected bool
	Codec     Codec
	// Width and Height come from the parameter sets or JPEG headers.
	Width, Height int
	Transport     string

	FramesReceived    uint64
	KeyframesReceived uint64
	BytesReceived     uint64
	PacketsLost       uint64
	Reconnects        uint64
	DecodeErrors      uint64
	LastFrame         time.Time
}
