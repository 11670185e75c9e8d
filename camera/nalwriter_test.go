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
