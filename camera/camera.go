// Package camera keeps one RTSP session per configured camera alive,
// depacketizes its video, tracks the latest key frame and decodes pictures
// for analysis. The cgo decoder lives in camera/decode behind the Decoder
// interface, so this package and its users build without cgo.
package camera

import (
	"time"

	"github.com/camera-exporter/camera_exporter/imagestats"
	"github.com/camera-exporter/camera_exporter/video"
)

// Decoder turns access units into pictures and analyzes the latest one. An
// access unit is a list of NAL units without start codes (H264, H265) or a
// single JPEG image (MJPEG). A Decoder is used by one goroutine at a time.
// It refuses pictures beyond config.MaxPicturePixelsCeiling, whatever the
// camera's max_picture_pixels, which Stream checks against the parameter
// sets it parses: those it cannot parse still reach the decoder.
type Decoder interface {
	// Decode feeds the next access unit of a continuous stream; the picture
	// it carries may come out later (B-frames).
	Decode(au [][]byte) error
	// DecodeKeyframe decodes one self-contained key frame (parameter sets
	// included) on its own, draining the decoder so its picture is ready now.
	DecodeKeyframe(au [][]byte) error
	// Analyze measures the latest decoded picture.
	Analyze(darkThreshold float64) (imagestats.Stats, error)
	// KeyPicture tells whether the latest decoded picture was coded on
	// its own (a key frame's), whichever access unit brought it out.
	KeyPicture() bool
	// Picture converts the latest decoded picture to BGR scaled to
	// width x height, for the detector, in a newly allocated Image.
	Picture(width, height int) (video.Image, error)
	// PictureSize is the size of the pictures the decoder is set up for
	// once it applied their parameter sets, also where a picture then
	// failed to decode, 0 before: the stream checks it against
	// max_picture_pixels after every frame it decodes in full.
	PictureSize() (width, height int)
	Close()
}

// NewDecoder creates a Decoder for a codec.
type NewDecoder func(video.Codec) (Decoder, error)

// AsNewDecoder makes a NewDecoder of a constructor that returns a concrete
// Decoder, as camera/decode's New does: that package cannot name this
// one's interface without importing its parent. The type parameter checks
// at compile time that D is a Decoder.
func AsNewDecoder[D Decoder](newDecoder func(video.Codec) (D, error)) NewDecoder {
	return func(codec video.Codec) (Decoder, error) {
		dec, err := newDecoder(codec)
		if err != nil {
			return nil, err // not a nil D in a non-nil interface
		}
		return dec, nil
	}
}

// Status is a snapshot of a stream's counters, safe to read at scrape time.
type Status struct {
	Connected bool
	Codec     video.Codec
	// Width and Height come from the latest SPS or JPEG header, or, where
	// that does not tell, from the latest picture of the session decoded.
	Width, Height int
	// Transport is the one the session negotiated, tcp or udp, also for
	// the configured auto.
	Transport string

	FramesReceived    uint64
	KeyframesReceived uint64
	BytesReceived     uint64
	PacketsLost       uint64
	// Reconnects counts the attempts to re-establish the session, by the
	// reason the session before ended.
	Reconnects   [numReasons]uint64
	DecodeErrors uint64
	LastFrame    time.Time
	// FrameRate is the frames per second received over the latest 5 s
	// of frames; 0 until known.
	FrameRate float64
	// LastEnded is the reason the latest session ended, "" if none did.
	LastEnded string
}
