package camera

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpmjpeg"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/pion/rtp"
)

// track turns the RTP packets of one video format into access units and
// recognizes key frames. It runs on gortsplib's reader goroutine, so it does
// only cheap bookkeeping: parameter sets, picture size, key frame copies.
type track interface {
	codec() Codec
	// depacketize returns the next complete access unit, or errIncomplete.
	depacketize(pkt *rtp.Packet) ([][]byte, error)
	// keyframe returns a self-contained copy of au (parameter sets first)
	// when au is a random access point, else nil.
	keyframe(au [][]byte) [][]byte
	// size is the picture size seen in the stream so far (0 if unknown).
	size() (width, height int)
}

// errIncomplete means the packet was buffered and more are needed.
var errIncomplete = errors.New("access unit incomplete")

// findTrack picks the first supported video format of a session.
func findTrack(desc *description.Session) (*description.Media, format.Format, track, error) {
	var h264f *format.H264
	if medi := desc.FindFormat(&h264f); medi != nil {
		t, err := newH264Track(h264f)
		return medi, h264f, t, err
	}
	var h265f *format.H265
	if medi := desc.FindFormat(&h265f); medi != nil {
		t, err := newH265Track(h265f)
		return medi, h265f, t, err
	}
	var mjpegf *format.MJPEG
	if medi := desc.FindFormat(&mjpegf); medi != nil {
		t, err := newMJPEGTrack(mjpegf)
		return medi, mjpegf, t, err
	}
	return nil, nil, nil, errors.New("no H264, H265 or MJPEG video in the stream")
}

// checkNALUs rejects access units with NAL units shorter than their header,
// which a broken camera can send and which would otherwise panic later.
func checkNALUs(au [][]byte, headerSize int) error {
	for _, nalu := range au {
		if len(nalu) < headerSize {
			return errors.New("truncated NAL unit")
		}
	}
	return nil
}

// paramSets remembers the latest parameter sets of an H264/H265 stream:
// cameras change them in-band or leave them out of the SDP.
type paramSets struct {
	sets          map[byte][]byte // by NAL unit type
	order         []byte          // the order a decoder needs them in
	width, height int
}

func newParamSets(order ...byte) paramSets {
	return paramSets{sets: map[byte][]byte{}, order: order}
}

// update stores nalu when it is a parameter set of type typ and reports
// whether it changed.
func (p *paramSets) update(typ byte, nalu []byte) bool {
	if bytes.Equal(p.sets[typ], nalu) {
		return false
	}
	p.sets[typ] = bytes.Clone(nalu)
	return true
}

// prepend builds a self-contained key frame: every known parameter set,
// then the access unit's other NAL units, all copied because gortsplib may
// reuse its buffers.
func (p *paramSets) prepend(au [][]byte, isParamSet func([]byte) bool) [][]byte {
	out := make([][]byte, 0, len(p.order)+len(au))
	for _, typ := range p.order {
		if ps := p.sets[typ]; ps != nil {
			out = append(out, ps)
		}
	}
	for _, nalu := range au {
		if !isParamSet(nalu) {
			out = append(out, bytes.Clone(nalu))
		}
	}
	return out
}

type h264Track struct {
	dec *rtph264.Decoder
	ps  paramSets
}

func newH264Track(f *format.H264) (*h264Track, error) {
	dec, err := f.CreateDecoder()
	if err != nil {
		return nil, err
	}
	t := &h264Track{dec: dec, ps: newParamSets(byte(h264.NALUTypeSPS), byte(h264.NALUTypePPS))}
	sps, pps := f.SafeParams()
	t.observe([][]byte{sps, pps})
	return t, nil
}

func (t *h264Track) codec() Codec { return CodecH264 }

func (t *h264Track) depacketize(pkt *rtp.Packet) ([][]byte, error) {
	au, err := t.dec.Decode(pkt)
	if errors.Is(err, rtph264.ErrMorePacketsNeeded) || errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious) {
		return nil, errIncomplete
	}
	if err != nil {
		return nil, err
	}
	return au, checkNALUs(au, 1)
}

func h264Type(nalu []byte) h264.NALUType { return h264.NALUType(nalu[0] & 0x1f) }

func isH264ParamSet(nalu []byte) bool {
	typ := h264Type(nalu)
	return typ == h264.NALUTypeSPS || typ == h264.NALUTypePPS
}

func (t *h264Track) observe(au [][]byte) {
	for _, nalu := range au {
		if len(nalu) == 0 || !isH264ParamSet(nalu) { // parameter sets from the SDP may be absent
			continue
		}
		typ := h264Type(nalu)
		if t.ps.update(byte(typ), nalu) && typ == h264.NALUTypeSPS {
			var sps h264.SPS
			if sps.Unmarshal(nalu) == nil {
				t.ps.width, t.ps.height = sps.Width(), sps.Height()
			}
		}
	}
}

func (t *h264Track) keyframe(au [][]byte) [][]byte {
	t.observe(au)
	if !h264.IsRandomAccess(au) {
		return nil
	}
	return t.ps.prepend(au, isH264ParamSet)
}

func (t *h264Track) size() (int, int) { return t.ps.width, t.ps.height }

type h265Track struct {
	dec *rtph265.Decoder
	ps  paramSets
}

func newH265Track(f *format.H265) (*h265Track, error) {
	dec, err := f.CreateDecoder()
	if err != nil {
		return nil, err
	}
	t := &h265Track{dec: dec, ps: newParamSets(
		byte(h265.NALUType_VPS_NUT), byte(h265.NALUType_SPS_NUT), byte(h265.NALUType_PPS_NUT))}
	vps, sps, pps := f.SafeParams()
	t.observe([][]byte{vps, sps, pps})
	return t, nil
}

func (t *h265Track) codec() Codec { return CodecH265 }

func (t *h265Track) depacketize(pkt *rtp.Packet) ([][]byte, error) {
	au, err := t.dec.Decode(pkt)
	if errors.Is(err, rtph265.ErrMorePacketsNeeded) || errors.Is(err, rtph265.ErrNonStartingPacketAndNoPrevious) {
		return nil, errIncomplete
	}
	if err != nil {
		return nil, err
	}
	return au, checkNALUs(au, 2)
}

func h265Type(nalu []byte) h265.NALUType { return h265.NALUType((nalu[0] >> 1) & 0x3f) }

func isH265ParamSet(nalu []byte) bool {
	switch h265Type(nalu) {
	case h265.NALUType_VPS_NUT, h265.NALUType_SPS_NUT, h265.NALUType_PPS_NUT:
		return true
	}
	return false
}

func (t *h265Track) observe(au [][]byte) {
	for _, nalu := range au {
		if len(nalu) < 2 || !isH265ParamSet(nalu) { // parameter sets from the SDP may be absent
			continue
		}
		typ := h265Type(nalu)
		if t.ps.update(byte(typ), nalu) && typ == h265.NALUType_SPS_NUT {
			var sps h265.SPS
			if sps.Unmarshal(nalu) == nil {
				t.ps.width, t.ps.height = sps.Width(), sps.Height()
			}
		}
	}
}

func (t *h265Track) keyframe(au [][]byte) [][]byte {
	t.observe(au)
	if !h265.IsRandomAccess(au) {
		return nil
	}
	return t.ps.prepend(au, isH265ParamSet)
}

func (t *h265Track) size() (int, int) { return t.ps.width, t.ps.height }

// mjpegTrack: every JPEG is a key frame, and rtpmjpeg allocates a fresh
// buffer for each, so no copy is needed.
type mjpegTrack struct {
	dec           *rtpmjpeg.Decoder
	width, height int
}

func newMJPEGTrack(f *format.MJPEG) (*mjpegTrack, error) {
	dec, err := f.CreateDecoder()
	if err != nil {
		return nil, err
	}
	return &mjpegTrack{dec: dec}, nil
}

func (t *mjpegTrack) codec() Codec { return CodecMJPEG }

func (t *mjpegTrack) depacketize(pkt *rtp.Packet) ([][]byte, error) {
	img, err := t.dec.Decode(pkt)
	if errors.Is(err, rtpmjpeg.ErrMorePacketsNeeded) || errors.Is(err, rtpmjpeg.ErrNonStartingPacketAndNoPrevious) {
		return nil, errIncomplete
	}
	if err != nil {
		return nil, err
	}
	return [][]byte{img}, nil
}

func (t *mjpegTrack) keyframe(au [][]byte) [][]byte {
	if w, h, err := jpegSize(au[0]); err == nil {
		t.width, t.height = w, h
	}
	return au
}

func (t *mjpegTrack) size() (int, int) { return t.width, t.height }

// jpegSize reads the picture size from a JPEG's start-of-frame segment.
func jpegSize(img []byte) (width, height int, err error) {
	pos := 2 // after SOI
	for pos+4 <= len(img) {
		if img[pos] != 0xff {
			return 0, 0, fmt.Errorf("bad JPEG marker at %d", pos)
		}
		marker := img[pos+1]
		length := int(img[pos+2])<<8 | int(img[pos+3])
		if marker >= 0xc0 && marker <= 0xc2 { // baseline, extended, progressive
			if pos+9 > len(img) {
				break
			}
			height = int(img[pos+5])<<8 | int(img[pos+6])
			width = int(img[pos+7])<<8 | int(img[pos+8])
			return width, height, nil
		}
		pos += 2 + length
	}
	return 0, 0, errors.New("no JPEG start-of-frame segment")
}
