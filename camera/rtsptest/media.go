// Package rtsptest serves encoded video over RTSP from an in-process gortsplib
// server, the way net/http/httptest serves HTTP: tests, `make demo` and the
// benchmarks use it to stand in for real IP cameras.
package rtsptest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/pion/rtp"
)

// Codec names an elementary stream format that the server can send.
type Codec string

// The codecs that cameras send and the exporter decodes.
const (
	H264  Codec = "h264"
	H265  Codec = "h265"
	MJPEG Codec = "mjpeg"
)

// Media is an encoded clip: access units in decoding order (NAL units
// without start codes for H264/H265, one JPEG image each for MJPEG), sent in
// a loop at FPS.
type Media struct {
	Codec       Codec
	FPS         int
	AccessUnits [][][]byte
	// EditPackets, when set, edits the RTP packets of each access unit
	// before they are sent, as a camera with a broken packetizer would.
	EditPackets func([]*rtp.Packet) []*rtp.Packet
	// OutOfBandParameterSets, with Options.AnnounceParameterSets, sends the
	// parameter sets in the SDP only, as cameras that never repeat them
	// in-band do.
	OutOfBandParameterSets bool
}

// Encode runs ffmpeg with the given input arguments (e.g. "-f", "lavfi",
// "-i", "color=gray") and encodes frames frames at fps into dir, returning
// the clip. extra is appended to the encoder options (e.g. "-bf", "0").
func Encode(ctx context.Context, dir string, codec Codec, fps, frames int, input []string, extra ...string) (*Media, error) {
	f, err := os.CreateTemp(dir, "clip-*."+string(codec))
	if err != nil {
		return nil, err
	}
	f.Close()
	out := f.Name()
	defer os.Remove(out)
	args := append([]string{"-y", "-loglevel", "error", "-nostdin"}, input...)
	args = append(args, "-frames:v", fmt.Sprint(frames), "-r", fmt.Sprint(fps))
	switch codec {
	case H264:
		args = append(args, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", fmt.Sprint(fps),
			"-bsf:v", "h264_metadata=aud=insert", "-f", "h264")
	case H265:
		args = append(args, "-c:v", "libx265", "-x265-params", "log-level=error", "-pix_fmt", "yuv420p",
			"-g", fmt.Sprint(fps), "-bsf:v", "hevc_metadata=aud=insert", "-f", "hevc")
	case MJPEG:
		// RTP/JPEG (RFC 2435) carries no Huffman tables: receivers assume
		// the standard ones, so the encoder must not optimize them.
		args = append(args, "-c:v", "mjpeg", "-pix_fmt", "yuvj420p", "-q:v", "3", "-huffman", "default", "-f", "mjpeg")
	default:
		return nil, fmt.Errorf("unknown codec %q", codec)
	}
	args = append(args, extra...)
	args = append(args, out)
	cmd := exec.CommandContext(ctx, "ffmpeg", args...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ffmpeg: %w: %s", err, msg)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	aus, err := Split(codec, data)
	if err != nil {
		return nil, err
	}
	return &Media{Codec: codec, FPS: fps, AccessUnits: aus}, nil
}

// Split cuts a raw elementary stream into access units: Annex-B H264/H265
// at access unit delimiters (which are dropped, as cameras do not send
// them), MJPEG at JPEG start-of-image markers.
func Split(codec Codec, data []byte) ([][][]byte, error) {
	switch codec {
	case H264:
		nalus, err := unmarshalAnnexB(data)
		if err != nil {
			return nil, err
		}
		return splitAtDelimiters(nalus, func(n []byte) bool {
			return h264.NALUType(n[0]&0x1f) == h264.NALUTypeAccessUnitDelimiter
		})
	case H265:
		nalus, err := unmarshalAnnexB(data) // Annex-B framing is the same for H265.
		if err != nil {
			return nil, err
		}
		return splitAtDelimiters(nalus, func(n []byte) bool {
			return h265.NALUType((n[0]>>1)&0x3f) == h265.NALUType_AUD_NUT
		})
	case MJPEG:
		return splitJPEG(data)
	}
	return nil, fmt.Errorf("unknown codec %q", codec)
}

// unmarshalAnnexB cuts an Annex-B stream into NAL units, a few MiB at a
// time: mediacommon refuses more than h264.MaxAccessUnitSize at once, which
// a long clip at a high bitrate (noisy frames) exceeds.
func unmarshalAnnexB(data []byte) ([][]byte, error) {
	const piece = h264.MaxAccessUnitSize / 2
	var nalus [][]byte
	for len(data) > 0 {
		n := len(data)
		if n > piece {
			// Cut at a start code, its leading zero byte included, so
			// that no NAL unit is split.
			if i := bytes.Index(data[piece:], []byte{0, 0, 1}); i >= 0 {
				n = piece + i
				if data[n-1] == 0 {
					n--
				}
			}
		}
		var part h264.AnnexB
		if err := part.Unmarshal(data[:n]); err != nil {
			return nil, err
		}
		nalus = append(nalus, part...)
		data = data[n:]
	}
	return nalus, nil
}

func splitAtDelimiters(nalus [][]byte, isDelimiter func([]byte) bool) ([][][]byte, error) {
	var aus [][][]byte
	var cur [][]byte
	for _, n := range nalus {
		if len(n) == 0 {
			continue
		}
		if isDelimiter(n) {
			if len(cur) > 0 {
				aus = append(aus, cur)
			}
			cur = nil
			continue
		}
		cur = append(cur, n)
	}
	if len(cur) > 0 {
		aus = append(aus, cur)
	}
	if len(aus) == 0 {
		return nil, fmt.Errorf("no access unit delimiters found")
	}
	return aus, nil
}

func splitJPEG(data []byte) ([][][]byte, error) {
	soi := []byte{0xff, 0xd8, 0xff}
	var aus [][][]byte
	for len(data) > 0 {
		if !bytes.HasPrefix(data, soi) {
			return nil, fmt.Errorf("JPEG stream does not start with SOI")
		}
		next := bytes.Index(data[len(soi):], soi)
		if next < 0 {
			aus = append(aus, [][]byte{data})
			break
		}
		next += len(soi)
		aus = append(aus, [][]byte{data[:next]})
		data = data[next:]
	}
	return aus, nil
}

// Clip encodes frames frames of an ffmpeg lavfi source graph (e.g.
// "color=c=gray:s=320x240:r=25") at 25 fps for a test, failing tb if
// ffmpeg does. extra is appended to the encoder options.
func Clip(tb testing.TB, codec Codec, lavfi string, frames int, extra ...string) *Media {
	tb.Helper()
	m, err := Encode(tb.Context(), tb.TempDir(), codec, 25, frames, []string{"-f", "lavfi", "-i", lavfi}, extra...)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// Photo returns a one-second H264 clip of the photograph at path, its
// sides made even for 4:2:0.
func Photo(tb testing.TB, path string) *Media {
	tb.Helper()
	m, err := Encode(tb.Context(), tb.TempDir(), H264, 25, 25, []string{"-loop", "1", "-i", path},
		"-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2")
	if err != nil {
		tb.Fatal(err)
	}
	return m
}
