package camera

import (
	"slices"

	"github.com/bluenviron/mediacommon/v2/pkg/bits"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

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
