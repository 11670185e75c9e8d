package camera

import (
	"slices"

	"github.com/bluenviron/mediacommon/v2/pkg/bits"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// rbspReader reads the fields of a parameter set that a test knows to be
// there: a field it cannot read is a broken test.
type rbspReader struct {
	rbsp []byte
	pos  int // bits read
}

func (r *rbspReader) ue() uint32 {
	v, err := bits.ReadGolombUnsigned(r.rbsp, &r.pos)
	if err != nil {
		panic(err)
	}
	return v
}

func (r *rbspReader) flag() bool {
	v, err := bits.ReadFlag(r.rbsp, &r.pos)
	if err != nil {
		panic(err)
	}
	return v
}

// rbspWriter writes the bits of a crafted parameter set.
type rbspWriter struct {
	buf []byte
	n   int // bits written
}

func (w *rbspWriter) bits(v uint64, n int) {
	for i := n - 1; i >= 0; i-- {
		if w.n%8 == 0 {
			w.buf = append(w.buf, 0)
		}
		w.buf[len(w.buf)-1] |= byte(v>>i&1) << (7 - w.n%8)
		w.n++
	}
}

// ue writes v Exp-Golomb coded.
func (w *rbspWriter) ue(v uint32) {
	x := uint64(v) + 1
	n := 0
	for x>>n > 1 {
		n++
	}
	w.bits(0, n)
	w.bits(x, n+1)
}

// nalu ends the RBSP (stop bit, alignment) and returns it as a NAL unit
// after header, with emulation prevention bytes.
func (w *rbspWriter) nalu(header ...byte) []byte {
	w.bits(1, 1)
	out, zeros := slices.Clone(header), 0
	for _, b := range w.buf {
		if zeros >= 2 && b <= 3 {
			out, zeros = append(out, 3), 0
		}
		out = append(out, b)
		if b == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return out
}

// WithPPSID returns an H264 or H265 PPS (headerSize 1 or 2) with its
// pic_parameter_set_id, the first field, replaced by id.
func WithPPSID(pps []byte, headerSize int, id uint32) []byte {
	return withUE(pps, headerSize, 0, id)
}

// withUE returns nalu with the Exp-Golomb value at bit pos of its RBSP
// replaced by v.
func withUE(nalu []byte, headerSize, pos int, v uint32) []byte {
	rbsp := h264.EmulationPreventionRemove(nalu[headerSize:])
	var w rbspWriter
	copyBits := func(from, to int) {
		for i := from; i < to; i++ {
			w.bits(uint64(rbsp[i/8]>>(7-i%8)&1), 1)
		}
	}
	copyBits(0, pos)
	end := pos
	if _, err := bits.ReadGolombUnsigned(rbsp, &end); err != nil {
		panic(err)
	}
	w.ue(v)
	stop := 8*len(rbsp) - 1 // the stop bit: the last bit set
	for rbsp[stop/8]>>(7-stop%8)&1 == 0 {
		stop--
	}
	copyBits(end, stop)
	return w.nalu(nalu[:headerSize]...)
}

// CraftH264SPS returns a Baseline profile SPS of a picture widthMBs x
// heightMBs macroblocks large, less 2*cropRight and 2*cropBottom pixels.
func CraftH264SPS(id, widthMBs, heightMBs, cropRight, cropBottom uint32) []byte {
	var w rbspWriter
	w.bits(66, 8)   // profile_idc: Baseline
	w.bits(0xc0, 8) // constraint_set0_flag, constraint_set1_flag
	w.bits(30, 8)   // level_idc
	w.ue(id)
	w.ue(0) // log2_max_frame_num_minus4
	w.ue(2) // pic_order_cnt_type
	w.ue(1) // max_num_ref_frames
	w.bits(0, 1)
	w.ue(widthMBs - 1)
	w.ue(heightMBs - 1)
	w.bits(1, 1) // frame_mbs_only_flag
	w.bits(1, 1) // direct_8x8_inference_flag
	cropping := cropRight != 0 || cropBottom != 0
	if cropping {
		w.bits(1, 1)
		w.ue(0)
		w.ue(cropRight)
		w.ue(0)
		w.ue(cropBottom)
	} else {
		w.bits(0, 1)
	}
	w.bits(0, 1) // vui_parameters_present_flag
	return w.nalu(0x67)
}

// WithH264PictureSize returns an H264 SPS as encoders write it (without
// scaling matrices, pic_order_cnt_type 0 or 2) with its picture size
// replaced by widthMBs x heightMBs macroblocks.
func WithH264PictureSize(sps []byte, widthMBs, heightMBs uint32) []byte {
	pos := h264SizePos(sps)
	sps = withUE(sps, 1, pos, widthMBs-1)
	rbsp := h264.EmulationPreventionRemove(sps[1:])
	if _, err := bits.ReadGolombUnsigned(rbsp, &pos); err != nil {
		panic(err)
	}
	return withUE(sps, 1, pos, heightMBs-1)
}

// h264SizePos returns the bit position of pic_width_in_mbs_minus1 in the
// RBSP of an H264 SPS (H.264 7.3.2.1.1).
func h264SizePos(sps []byte) int {
	r := rbspReader{rbsp: h264.EmulationPreventionRemove(sps[1:]), pos: 24} // after profile_idc, constraint flags, level_idc
	ue, flag, rbsp := r.ue, r.flag, r.rbsp
	ue() // seq_parameter_set_id
	if slices.Contains([]byte{100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}, rbsp[0]) {
		if ue() == 3 { // chroma_format_idc
			flag() // separate_colour_plane_flag
		}
		ue() // bit_depth_luma_minus8
		ue() // bit_depth_chroma_minus8
		flag()
		if flag() {
			panic("SPS with scaling matrices")
		}
	}
	ue() // log2_max_frame_num_minus4
	switch ue() {
	case 0:
		ue() // log2_max_pic_order_cnt_lsb_minus4
	case 1:
		panic("SPS with pic_order_cnt_type 1")
	}
	ue()   // max_num_ref_frames
	flag() // gaps_in_frame_num_value_allowed_flag
	return r.pos
}

// WithTruncatedVUI returns an H264 SPS as encoders write it (see
// WithH264PictureSize) with a VUI cut short after its
// timing_info_present_flag, as the camera of issue 20 sent it: libavcodec
// decodes it ("Truncated VUI"), mediacommon fails on it.
func WithTruncatedVUI(sps []byte) []byte {
	r := rbspReader{rbsp: h264.EmulationPreventionRemove(sps[1:]), pos: h264SizePos(sps)}
	ue, flag, rbsp := r.ue, r.flag, r.rbsp
	ue()         // pic_width_in_mbs_minus1
	ue()         // pic_height_in_map_units_minus1
	if !flag() { // frame_mbs_only_flag
		flag() // mb_adaptive_frame_field_flag
	}
	flag()      // direct_8x8_inference_flag
	if flag() { // frame_cropping_flag
		for range 4 {
			ue()
		}
	}
	var w rbspWriter
	for i := range r.pos {
		w.bits(uint64(rbsp[i/8]>>(7-i%8)&1), 1)
	}
	w.bits(1, 1) // vui_parameters_present_flag
	w.bits(0, 4) // no aspect ratio, overscan, video signal type, chroma location
	w.bits(1, 1) // timing_info_present_flag, and nothing after
	return w.nalu(sps[0])
}

// craftH265SPS returns an H265 SPS of a picture width x height large, less
// the conformance window (left, right, top, bottom, in chroma units) when
// set, that ends after its bit depths: mediacommon fails on it, past the
// size. subLayers adds a sub-layer whose profile is present, which
// mediacommon does not read either.
func craftH265SPS(chromaFormat, width, height uint32, window []uint32, subLayers bool) []byte {
	var w rbspWriter
	w.bits(0, 4) // sps_video_parameter_set_id
	if subLayers {
		w.bits(1, 3) // sps_max_sub_layers_minus1
	} else {
		w.bits(0, 3)
	}
	w.bits(1, 1)      // sps_temporal_id_nesting_flag
	w.bits(1, 8)      // general profile space, tier, profile_idc: Main
	w.bits(1<<30, 32) // general_profile_compatibility_flags
	w.bits(0, 48)     // general constraint flags
	w.bits(93, 8)     // general_level_idc
	if subLayers {
		w.bits(0b10, 2)   // sub_layer_profile_present_flag, sub_layer_level_present_flag
		w.bits(0, 14)     // reserved_zero_2bits up to 8 sub-layers
		w.bits(1, 8)      // sub-layer profile space, tier, profile_idc
		w.bits(1<<30, 32) // its compatibility flags
		w.bits(0, 48)     // its constraint flags
	}
	w.ue(0) // sps_seq_parameter_set_id
	w.ue(chromaFormat)
	if chromaFormat == 3 {
		w.bits(0, 1) // separate_colour_plane_flag
	}
	w.ue(width)
	w.ue(height)
	if window != nil {
		w.bits(1, 1)
		for _, v := range window {
			w.ue(v)
		}
	} else {
		w.bits(0, 1)
	}
	w.ue(0) // bit_depth_luma_minus8
	w.ue(0) // bit_depth_chroma_minus8
	return w.nalu(0x42, 0x01)
}

// WithH265Window returns an H265 SPS with its conformance window replaced
// by window (left, right, top, bottom, in chroma units).
func WithH265Window(sps []byte, window [4]uint32) []byte {
	rbsp := h264.EmulationPreventionRemove(sps[2:])
	start, err := h265SPSIDPos(rbsp)
	if err != nil {
		panic(err)
	}
	r := rbspReader{rbsp: rbsp, pos: start}
	ue := r.ue
	ue() // sps_seq_parameter_set_id
	if ue() == 3 {
		r.flag() // separate_colour_plane_flag
	}
	ue() // pic_width_in_luma_samples
	ue() // pic_height_in_luma_samples
	from := r.pos
	if r.flag() { // conformance_window_flag
		for range 4 {
			ue()
		}
	}
	var w rbspWriter
	copyBits := func(from, to int) {
		for i := from; i < to; i++ {
			w.bits(uint64(rbsp[i/8]>>(7-i%8)&1), 1)
		}
	}
	copyBits(0, from)
	w.bits(1, 1)
	for _, v := range window {
		w.ue(v)
	}
	stop := 8*len(rbsp) - 1 // the stop bit: the last bit set
	for rbsp[stop/8]>>(7-stop%8)&1 == 0 {
		stop--
	}
	copyBits(r.pos, stop)
	return w.nalu(sps[:2]...)
}
