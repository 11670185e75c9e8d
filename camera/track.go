package camera

import (
	"bytes"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpmjpeg"
	"github.com/bluenviron/mediacommon/v2/pkg/bits"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/pion/rtp"

	"github.com/camera-exporter/camera_exporter/video"
)

// track turns the RTP packets of one video format into access units and
// recognizes key frames. It runs on gortsplib's reader goroutine, so it does
// only cheap bookkeeping: parameter sets, picture size, key frame copies.
type track interface {
	codec() video.Codec
	// depacketize returns the access unit that pkt completes, or
	// errIncomplete. Another error is a depacketizing error, which may come
	// with an access unit. damaged tells an access unit that lost a NAL
	// unit, with this call's error or an earlier one's: no picture to
	// count, keep or decode. The access unit may share the track's
	// buffers: it is valid until the next call, and whoever keeps any of
	// it copies it.
	// Unless keepAll, the track may cut what key-frame analyses never read:
	// the slices of pictures that are no key frame, to their NAL unit
	// headers. keyframe and pictureHash of a key frame read all they need.
	depacketize(pkt *rtp.Packet, keepAll bool) (au [][]byte, damaged bool, err error)
	// observe keeps what au tells about the stream: parameter sets and
	// picture size. An error means au had an invalid one, which the size
	// ignores.
	observe(au [][]byte) error
	// picture reports whether au carries a complete coded picture: SEI or
	// parameter sets alone are no frame.
	picture(au [][]byte) bool
	// keyframe returns a self-contained copy of au (the parameter sets
	// observed so far first) when au is a random access point, else nil.
	keyframe(au [][]byte) [][]byte
	// paramSets returns the parameter sets observed so far, in decoder
	// order: where decoding starts without a key frame, the decoder may
	// have seen them in the SDP only.
	paramSets() [][]byte
	// recoveryPoint reports whether au carries a recovery point SEI, which
	// intra-refresh encoders send instead of key frames.
	recoveryPoint(au [][]byte) bool
	// size is the picture size of the latest SPS or JPEG (0 if unknown, as
	// after an SPS whose size cannot be read).
	size() (width, height int)
	// pictureHash hashes the coded picture of au, its slice data or JPEG,
	// without parameter sets or SEI, which a camera resending one picture
	// may renew: equal hashes mean the same coded picture.
	pictureHash(au [][]byte) uint64
}

// pictureHashSeed seeds the hashes of coded pictures, which are compared
// within one process only.
var pictureHashSeed = maphash.MakeSeed()

// errIncomplete means the packet was buffered and more are needed.
var errIncomplete = errors.New("access unit incomplete")

// findTrack picks the first supported video format of a session.
func findTrack(desc *description.Session) (*description.Media, format.Format, track, error) {
	var h264f *format.H264
	if medi := desc.FindFormat(&h264f); medi != nil {
		t, err := newNALTrack(&h264Codec, h264f)
		return medi, h264f, t, err
	}
	var h265f *format.H265
	if medi := desc.FindFormat(&h265f); medi != nil {
		t, err := newNALTrack(&h265Codec, h265f)
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

// nalCodec is what nalTrack needs to know about H264 or H265: the two
// differ only in these details.
type nalCodec struct {
	codec        video.Codec
	headerSize   int    // shorter NAL units are rejected
	paramSets    []byte // parameter set NAL unit types, in decoder order
	spsType      byte
	seiType      byte // the SEI NAL unit type (H265: prefix SEI)
	naluType     func(nalu []byte) byte
	paramSetID   func(nalu []byte) (uint32, error) // of a parameter set
	isVCL        func(typ byte) bool               // a NAL unit type that codes picture data
	spsSize      func(sps []byte) (width, height int, err error)
	randomAccess func(au [][]byte) bool
	// nonKeySlice: a VCL NAL unit of a picture that is no random access
	// point, whose data key-frame analyses never read.
	nonKeySlice func(nalu []byte) bool
	// sdpParams checks that nalDepacketizer serves the RTP payload format
	// of f and returns the parameter sets of its SDP, which may be absent
	// or empty.
	sdpParams func(f format.Format) ([][]byte, error)

	// The RTP payload format (RFC 6184, RFC 7798) and mediacommon's limits.
	aggregationType   byte // STAP-A, AP
	fragmentationType byte // FU-A, FU
	unsupportedType   func(typ byte) bool
	// fuNALUHeader appends the header of the NAL unit that a
	// fragmentation unit starts, from its payload and FU headers.
	fuNALUHeader      func(dst, payload []byte) []byte
	maxNALUs          int // per access unit
	maxAccessUnitSize int
}

var h264Codec = nalCodec{
	codec:      video.CodecH264,
	headerSize: 1,
	paramSets:  []byte{byte(h264.NALUTypeSPS), byte(h264.NALUTypePPS)},
	spsType:    byte(h264.NALUTypeSPS),
	seiType:    byte(h264.NALUTypeSEI),
	naluType:   func(nalu []byte) byte { return nalu[0] & 0x1f },
	isVCL:      func(typ byte) bool { return typ >= 1 && typ <= 5 },
	paramSetID: func(nalu []byte) (uint32, error) {
		rbsp := h264.EmulationPreventionRemove(nalu[1:])
		pos := 0
		if h264.NALUType(nalu[0]&0x1f) == h264.NALUTypeSPS {
			pos = 24 // profile_idc, constraint flags, level_idc
		}
		return readUE(rbsp, &pos)
	},
	spsSize: func(nalu []byte) (int, int, error) {
		var sps h264.SPS
		// mediacommon reads the SPS in syntax order and sets VUI before
		// reading it: an error with VUI set came from the VUI, after the
		// size, as with a VUI cut short, which libavcodec decodes all the
		// same ("Truncated VUI").
		if err := sps.Unmarshal(nalu); err != nil && sps.VUI == nil {
			return 0, 0, err
		}
		return sps.Width(), sps.Height(), nil
	},
	randomAccess: h264.IsRandomAccess,
	nonKeySlice: func(nalu []byte) bool {
		typ := h264.NALUType(nalu[0] & 0x1f)
		return typ >= h264.NALUTypeNonIDR && typ < h264.NALUTypeIDR
	},
	sdpParams: func(f format.Format) ([][]byte, error) {
		h := f.(*format.H264)
		if h.PacketizationMode >= 2 {
			return nil, errors.New("H264 interleaved mode (packetization-mode 2) is not supported")
		}
		sps, pps := h.SafeParams()
		return [][]byte{sps, pps}, nil
	},
	aggregationType:   byte(h264.NALUTypeSTAPA),
	fragmentationType: byte(h264.NALUTypeFUA),
	unsupportedType: func(typ byte) bool {
		switch h264.NALUType(typ) {
		case h264.NALUTypeSTAPB, h264.NALUTypeMTAP16, h264.NALUTypeMTAP24, h264.NALUTypeFUB:
			return true
		}
		return false
	},
	// The forbidden bit dropped, as gortsplib does.
	fuNALUHeader:      func(dst, p []byte) []byte { return append(dst, p[0]&0x60|p[1]&0x1f) },
	maxNALUs:          h264.MaxNALUsPerAccessUnit,
	maxAccessUnitSize: h264.MaxAccessUnitSize,
}

var h265Codec = nalCodec{
	codec:      video.CodecH265,
	headerSize: 2,
	paramSets: []byte{
		byte(h265.NALUType_VPS_NUT), byte(h265.NALUType_SPS_NUT), byte(h265.NALUType_PPS_NUT)},
	spsType:  byte(h265.NALUType_SPS_NUT),
	seiType:  byte(h265.NALUType_PREFIX_SEI_NUT),
	naluType: func(nalu []byte) byte { return (nalu[0] >> 1) & 0x3f },
	isVCL:    func(typ byte) bool { return typ < 32 },
	paramSetID: func(nalu []byte) (uint32, error) {
		rbsp := h264.EmulationPreventionRemove(nalu[2:])
		pos := 0
		switch h265.NALUType((nalu[0] >> 1) & 0x3f) {
		case h265.NALUType_VPS_NUT:
			id, err := bits.ReadBits(rbsp, &pos, 4)
			return uint32(id), err
		case h265.NALUType_SPS_NUT:
			pos, err := h265SPSIDPos(rbsp)
			if err != nil {
				return 0, err
			}
			return readUE(rbsp, &pos)
		}
		return readUE(rbsp, &pos)
	},
	spsSize: func(nalu []byte) (int, int, error) {
		var sps h265.SPS
		if err := sps.Unmarshal(nalu); err != nil {
			return h265SPSSize(nalu)
		}
		return sps.Width(), sps.Height(), nil
	},
	randomAccess: h265.IsRandomAccess,
	// VCL types but the IRAP ones, 16 to 23; a temporal id of 0, which
	// is invalid, is no slice: an Annex-B start code reads so.
	nonKeySlice: func(nalu []byte) bool {
		typ := (nalu[0] >> 1) & 0x3f
		return len(nalu) >= 2 && nalu[1]&7 != 0 && (typ < 16 || typ >= 24 && typ < 32)
	},
	sdpParams: func(f format.Format) ([][]byte, error) {
		h := f.(*format.H265)
		if h.MaxDONDiff != 0 {
			return nil, errors.New("H265 decoding order numbers (sprop-max-don-diff) are not supported")
		}
		vps, sps, pps := h.SafeParams()
		return [][]byte{vps, sps, pps}, nil
	},
	aggregationType:   byte(h265.NALUType_AggregationUnit),
	fragmentationType: byte(h265.NALUType_FragmentationUnit),
	unsupportedType:   func(typ byte) bool { return h265.NALUType(typ) == h265.NALUType_PACI },
	// The type of the FU header in the payload header's.
	fuNALUHeader:      func(dst, p []byte) []byte { return append(dst, p[0]&0x81|(p[2]&0x3f)<<1, p[1]) },
	maxNALUs:          h265.MaxNALUsPerAccessUnit,
	maxAccessUnitSize: h265.MaxAccessUnitSize,
}

// readUE reads the Exp-Golomb coded value at bit *pos of rbsp and moves
// *pos past it.
func readUE(rbsp []byte, pos *int) (uint32, error) {
	if *pos >= 8*len(rbsp) { // bits.ReadGolombUnsigned would read past the end
		return 0, errors.New("not enough bits")
	}
	return bits.ReadGolombUnsigned(rbsp, pos)
}

// h265SPSIDPos finds sps_seq_parameter_set_id in an SPS without its NAL
// unit header: it follows the profile_tier_level structure (H.265
// 7.3.2.2.1, 7.3.3), and mediacommon's parser would have to accept the
// whole SPS first.
func h265SPSIDPos(rbsp []byte) (int, error) {
	pos := 4 // sps_video_parameter_set_id
	maxSubLayersMinus1, err := bits.ReadBits(rbsp, &pos, 3)
	if err != nil {
		return 0, err
	}
	pos += 1 + 96 // sps_temporal_id_nesting_flag; general profile, tier, level
	if n := int(maxSubLayersMinus1); n > 0 {
		// 8 pairs of sub-layer profile and level present flags, those
		// from n on reserved.
		flags, err := bits.ReadBits(rbsp, &pos, 16)
		if err != nil {
			return 0, err
		}
		for i := range n {
			if flags>>(15-2*i)&1 != 0 {
				pos += 88 // sub-layer profile
			}
			if flags>>(14-2*i)&1 != 0 {
				pos += 8 // sub-layer level
			}
		}
	}
	return pos, nil
}

// h265ChromaSubsampling are SubWidthC and SubHeightC (H.265 table 6-1)
// by chroma_format_idc: the units of the conformance window's offsets.
var h265ChromaSubsampling = [4][2]int64{{1, 1}, {2, 2}, {2, 1}, {1, 1}}

// h265SPSSize reads the picture size of an H265 SPS that mediacommon
// cannot read whole: one whose VUI is cut short, or with what mediacommon
// does not support (sub-layer profiles, long-term reference pictures),
// which libavcodec decodes. The size comes early (H.265 7.3.2.2.1): only
// profile_tier_level is before it, which h265SPSIDPos reads all of.
func h265SPSSize(nalu []byte) (int, int, error) {
	rbsp := h264.EmulationPreventionRemove(nalu[2:])
	pos, err := h265SPSIDPos(rbsp)
	if err != nil {
		return 0, 0, err
	}
	// The first error stops the reading: those after it read nothing.
	ue := func() uint32 {
		if err != nil {
			return 0
		}
		var v uint32
		v, err = readUE(rbsp, &pos)
		return v
	}
	flag := func() bool {
		if err != nil {
			return false
		}
		var f bool
		f, err = bits.ReadFlag(rbsp, &pos)
		return f
	}
	ue() // sps_seq_parameter_set_id
	chromaFormat := ue()
	if chromaFormat > 3 {
		return 0, 0, fmt.Errorf("invalid chroma_format_idc %d", chromaFormat)
	}
	if chromaFormat == 3 {
		flag() // separate_colour_plane_flag; the window's units are 1 either way
	}
	codedWidth, codedHeight := int64(ue()), int64(ue())
	// The conformance window's offsets, where conformance_window_flag.
	var left, right, top, bottom int64
	if flag() {
		left, right, top, bottom = int64(ue()), int64(ue()), int64(ue()), int64(ue())
	}
	if err != nil {
		return 0, 0, err
	}
	sub := h265ChromaSubsampling[chromaFormat]
	// In 64 bits: offsets as large as the sides must not wrap around.
	width := codedWidth - sub[0]*(left+right)
	height := codedHeight - sub[1]*(top+bottom)
	if width <= 0 || height <= 0 || width > maxPictureSide || height > maxPictureSide {
		return 0, 0, fmt.Errorf("picture size %dx%d", width, height)
	}
	return int(width), int(height), nil
}

// maxParamSets bounds the parameter sets kept per type, so that a camera
// sending ever new ids cannot grow memory. Cameras use one or two ids;
// H264 allows 32 SPS and 256 PPS ids.
const maxParamSets = 32

// paramSet is a parameter set NAL unit and its id.
type paramSet struct {
	id   uint32
	nalu []byte
}

// nalTrack is the track of an H264 or H265 stream. It remembers the latest
// parameter set of each type and id: cameras change them in-band, leave
// them out of the SDP, or use several (two PPS for two slice types).
type nalTrack struct {
	c             *nalCodec
	dep           nalDepacketizer
	sets          [][]paramSet // by index in c.paramSets, oldest first
	width, height int          // from the latest SPS
}

func newNALTrack(c *nalCodec, f format.Format) (*nalTrack, error) {
	params, err := c.sdpParams(f)
	if err != nil {
		return nil, err
	}
	t := &nalTrack{c: c, dep: nalDepacketizer{c: c}, sets: make([][]paramSet, len(c.paramSets))}
	// An invalid SPS in the SDP only leaves the size unknown: decode errors
	// count what the camera streams.
	t.observe(params)
	return t, nil
}

func (t *nalTrack) codec() video.Codec { return t.c.codec }

func (t *nalTrack) depacketize(pkt *rtp.Packet, keepAll bool) ([][]byte, bool, error) {
	au, err := t.dep.depacketize(pkt, keepAll)
	if au == nil {
		return nil, false, err
	}
	if bad := checkNALUs(au, t.c.headerSize); bad != nil {
		return nil, false, bad
	}
	return au, t.dep.returnedDamaged, err
}

func (t *nalTrack) isParamSet(nalu []byte) bool {
	return slices.Contains(t.c.paramSets, t.c.naluType(nalu))
}

// store keeps a parameter set under its type and id, replacing the one of
// the same id, and reports whether it is new or changed.
func (t *nalTrack) store(typ int, id uint32, nalu []byte) bool {
	sets := t.sets[typ]
	i := slices.IndexFunc(sets, func(ps paramSet) bool { return ps.id == id })
	if i >= 0 {
		if bytes.Equal(sets[i].nalu, nalu) {
			return false
		}
		sets = slices.Delete(sets, i, i+1)
	}
	if len(sets) == maxParamSets {
		sets = slices.Delete(sets, 0, 1) // the oldest: a camera rotating ids uses its newest
	}
	t.sets[typ] = append(sets, paramSet{id: id, nalu: bytes.Clone(nalu)})
	return true
}

// picture: the depacketizer emits only complete NAL units, so a VCL NAL
// unit is a coded picture (or a slice of one, maybe cut to its head).
func (t *nalTrack) picture(au [][]byte) bool {
	return slices.ContainsFunc(au, func(nalu []byte) bool { return t.c.isVCL(t.c.naluType(nalu)) })
}

func (t *nalTrack) pictureHash(au [][]byte) uint64 {
	var h maphash.Hash
	h.SetSeed(pictureHashSeed)
	for _, nalu := range au {
		if t.c.isVCL(t.c.naluType(nalu)) {
			h.Write(nalu)
		}
	}
	return h.Sum64()
}

// maxPictureSide bounds the width and height an SPS may give: beyond it,
// or not positive (cropping beyond the picture underflows), it is corrupt.
const maxPictureSide = 16384

// observe stores the parameter sets of au, reading the picture size from a
// new or changed SPS. An invalid SPS is kept all the same: libavcodec, the
// judge, decodes some that mediacommon rejects, and ignores bad cropping.
// The size of an SPS that cannot be read is unknown, not the previous
// one's: the picture the decoder makes of it tells it (Stream).
func (t *nalTrack) observe(au [][]byte) error {
	var invalid error
	for _, nalu := range au {
		if len(nalu) < t.c.headerSize || !t.isParamSet(nalu) { // those from the SDP may be absent
			continue
		}
		typ := t.c.naluType(nalu)
		id, err := t.c.paramSetID(nalu)
		if err != nil {
			invalid = fmt.Errorf("parameter set of type %d without an id: %w", typ, err)
			if typ == t.c.spsType {
				t.width, t.height = 0, 0
			}
			continue
		}
		if !t.store(slices.Index(t.c.paramSets, typ), id, nalu) || typ != t.c.spsType {
			continue
		}
		w, h, err := t.c.spsSize(nalu)
		if err == nil && (w <= 0 || h <= 0 || w > maxPictureSide || h > maxPictureSide) {
			err = fmt.Errorf("picture size %dx%d", w, h)
		}
		if err != nil {
			invalid = fmt.Errorf("invalid SPS %d: %w", id, err)
			t.width, t.height = 0, 0
			continue
		}
		t.width, t.height = w, h
	}
	return invalid
}

// keyframe builds a self-contained key frame: every known parameter set,
// then the access unit's other NAL units, all copied because the
// depacketizer reuses its buffers. Its slices are whole: the depacketizer
// cuts only those of other pictures.
func (t *nalTrack) keyframe(au [][]byte) [][]byte {
	if !t.c.randomAccess(au) {
		return nil
	}
	out := t.paramSets()
	for _, nalu := range au {
		if !t.isParamSet(nalu) {
			out = append(out, bytes.Clone(nalu))
		}
	}
	return out
}

// paramSets shares the stored NAL units: store replaces them, never
// writes to them.
func (t *nalTrack) paramSets() [][]byte {
	var out [][]byte
	for _, sets := range t.sets {
		for _, ps := range sets {
			out = append(out, ps.nalu)
		}
	}
	return out
}

func (t *nalTrack) recoveryPoint(au [][]byte) bool {
	return slices.ContainsFunc(au, func(nalu []byte) bool {
		return t.c.naluType(nalu) == t.c.seiType && hasRecoveryPoint(h264.EmulationPreventionRemove(nalu[t.c.headerSize:]))
	})
}

// recoveryPointSEI is the payload type of a recovery point SEI message in
// H264 (D.1.8) and H265 (D.2.8) alike.
const recoveryPointSEI = 6

// hasRecoveryPoint walks the messages of an SEI RBSP (H264 7.3.2.3.1,
// H265 7.3.5): payload type and size, each coded as bytes of 0xff adding
// 255 and a last byte below 0xff, then the payload.
func hasRecoveryPoint(rbsp []byte) bool {
	readValue := func() (int, bool) {
		v := 0
		for len(rbsp) > 0 {
			b := rbsp[0]
			rbsp = rbsp[1:]
			v += int(b)
			if b != 0xff {
				return v, true
			}
		}
		return 0, false
	}
	// A message needs at least a type and a size byte; a lone 0x80 is the
	// RBSP trailing bits.
	for len(rbsp) >= 2 {
		typ, ok := readValue()
		if !ok {
			return false
		}
		if typ == recoveryPointSEI {
			return true
		}
		size, ok := readValue()
		if !ok || size > len(rbsp) {
			return false
		}
		rbsp = rbsp[size:]
	}
	return false
}

func (t *nalTrack) size() (int, int) { return t.width, t.height }

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

func (t *mjpegTrack) codec() video.Codec { return video.CodecMJPEG }

// depacketize: rtpmjpeg returns no JPEG that lost a fragment.
func (t *mjpegTrack) depacketize(pkt *rtp.Packet, _ bool) ([][]byte, bool, error) {
	img, err := t.dec.Decode(pkt)
	if errors.Is(err, rtpmjpeg.ErrMorePacketsNeeded) || errors.Is(err, rtpmjpeg.ErrNonStartingPacketAndNoPrevious) {
		return nil, false, errIncomplete
	}
	if err != nil {
		return nil, false, err
	}
	return [][]byte{img}, false, nil
}

// picture: rtpmjpeg emits only images whose fragments all arrived, from
// offset 0 to the packet with the marker bit.
func (t *mjpegTrack) picture([][]byte) bool { return true }

func (t *mjpegTrack) observe(au [][]byte) error {
	w, h, err := jpegSize(au[0])
	if err == nil {
		t.width, t.height = w, h
	}
	return err
}

func (t *mjpegTrack) keyframe(au [][]byte) [][]byte { return au }

func (t *mjpegTrack) paramSets() [][]byte { return nil }

func (t *mjpegTrack) recoveryPoint([][]byte) bool { return false }

func (t *mjpegTrack) size() (int, int) { return t.width, t.height }

func (t *mjpegTrack) pictureHash(au [][]byte) uint64 { return maphash.Bytes(pictureHashSeed, au[0]) }

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
