package camera

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/pion/rtp"
)

// nalDepacketizer reassembles the access units of an H264 (RFC 6184) or
// H265 (RFC 7798) RTP stream: single NAL unit packets, aggregation packets
// (STAP-A, AP) and fragmentation units (FU-A, FU), without interleaving or
// decoding order numbers, as gortsplib's decoders do. Unlike those, it
// allocates nothing per packet once its buffers have grown: the NAL units
// of the access unit being received, fragments included, are appended to
// one buffer, which the next access unit reuses, and a non-key slice that
// no one reads whole is cut to its head.
//
// It differs from gortsplib v4.16.2 where that is lenient or cheaper: H265
// too ends access units at a new timestamp, accepts a fragmentation unit
// with both start and end bits, zero padding after aggregated NAL units
// and Annex-B wrapped NAL units; an access unit ends at the first packet
// of a new timestamp, not where its first NAL unit completes; and only NAL
// units that are no non-key slice are searched for Annex-B start codes,
// each on its own, where gortsplib searches every NAL unit once one had
// them.
type nalDepacketizer struct {
	c     *nalCodec
	buf   []byte     // the NAL units of the access unit being received, then the fragmented one in progress
	nalus []naluSpan // the complete NAL units in buf, in order
	au    [][]byte   // the access unit returned last, into buf
	ts    uint32     // the RTP timestamp of the access unit being received
	size  int        // the size of its NAL units as received, cut ones whole, for the limit
	// sent and sentBytes are the NAL units and bytes at the start of
	// nalus and buf that the call returns, which the next call drops: a
	// packet with a new timestamp adds its own after them.
	sent, sentBytes int
	// started: a packet was accepted, so a fragment without its start is
	// a loss, no longer a session joined in the middle of a NAL unit.
	started bool
	// unfinished: this call dropped a fragmented NAL unit that never got
	// its end fragment, which the call reports.
	unfinished bool
	// damaged: the access unit being received lost a fragmented NAL unit,
	// whatever the error that the call dropping it reported; the call
	// that returns the access unit reports it (returnedDamaged).
	damaged, returnedDamaged bool
	// The fragmented NAL unit in progress, in buf from fragStart on.
	frag      bool
	fragStart int
	fragSize  int    // as received
	fragCut   bool   // only its head is kept
	nextSeq   uint16 // the sequence number of its next fragment
}

// naluSpan is a NAL unit in nalDepacketizer.buf.
type naluSpan struct{ start, end int }

// annexBStartCode starts a NAL unit in the Annex-B byte stream format; the
// 4-byte one has a zero before. Emulation prevention keeps it out of NAL
// units.
var annexBStartCode = []byte{0, 0, 1}

// fuStart and fuEnd are the start and end bits of the FU header of H264 and
// H265 fragmentation units alike.
const (
	fuStart = 0x80
	fuEnd   = 0x40
)

// depacketize takes the next RTP packet and returns the access unit that
// it completes, or errIncomplete when it needs more. An access unit ends at
// the packet with the marker bit, or before the first packet of a new
// timestamp (cameras that never set the marker, such as the FLIR M400).
// The access unit is valid until the next call, which reuses its buffers.
//
// A fragmented NAL unit that another NAL unit or the end of its access
// unit interrupts before its end fragment is dropped, and the call returns
// errUnfinishedFragment: with the access unit that the packet completes,
// without that NAL unit, if it completes one. Other errors come alone.
// An access unit that lost a fragmented NAL unit, for whatever error and
// in whichever call, is damaged: returnedDamaged tells it when a call
// returns it, with the error or without.
//
// Unless keepAll, a non-key slice (a VCL NAL unit of a picture that is no
// random access point) is cut to its NAL unit header and the first byte
// after it, which starts its slice header: that is all that key-frame
// analyses read of it. Parameter sets, SEI and key slices are always whole.
func (d *nalDepacketizer) depacketize(pkt *rtp.Packet, keepAll bool) ([][]byte, error) {
	d.release()
	d.unfinished, d.returnedDamaged = false, false
	au, err := d.addPacket(pkt, keepAll)
	if d.unfinished && (err == nil || errors.Is(err, errIncomplete)) {
		return au, errUnfinishedFragment
	}
	return au, err
}

// errUnfinishedFragment: a fragmented NAL unit lost its end, without a
// lost packet (the camera cleared the end bit, or never sent the end).
var errUnfinishedFragment = errors.New("fragmented NAL unit without its end fragment")

// addPacket adds the NAL units of pkt to the access unit being received
// and returns the one it completes: depacketize but for the report of an
// unfinished fragment.
func (d *nalDepacketizer) addPacket(pkt *rtp.Packet, keepAll bool) ([][]byte, error) {
	p := pkt.Payload
	if len(p) < d.c.headerSize {
		d.dropFragment()
		return nil, errors.New("RTP payload shorter than a NAL unit header")
	}
	switch typ := d.c.naluType(p); {
	case typ == d.c.fragmentationType:
		return d.fragment(pkt, keepAll)
	case typ == d.c.aggregationType:
		return d.aggregate(pkt, keepAll)
	case d.c.unsupportedType(typ):
		d.dropFragment()
		d.started = true
		return nil, fmt.Errorf("RTP packets of type %d are not supported", typ)
	}
	d.begin(pkt.Timestamp)
	if err := d.add(p, keepAll); err != nil {
		return nil, err
	}
	d.started = true
	return d.end(pkt.Marker)
}

// aggregate takes an aggregation packet: NAL units each after its 16-bit
// size. Zero padding after the last one is allowed, as some cameras send.
func (d *nalDepacketizer) aggregate(pkt *rtp.Packet, keepAll bool) ([][]byte, error) {
	d.dropFragment()
	payload := pkt.Payload[d.c.headerSize:]
	// Checked first: a malformed packet leaves the access unit as it is.
	n := 0
	for p := payload; len(p) > 0; n++ {
		if len(p) < 2 {
			return nil, errors.New("invalid aggregation packet: truncated NAL unit size")
		}
		size := int(binary.BigEndian.Uint16(p))
		p = p[2:]
		if size == 0 {
			if !allZero(p) {
				return nil, errors.New("invalid aggregation packet: empty NAL unit")
			}
			break
		}
		if size > len(p) {
			return nil, errors.New("invalid aggregation packet: NAL unit beyond the payload")
		}
		p = p[size:]
	}
	if n == 0 {
		return nil, errors.New("aggregation packet without NAL units")
	}
	d.begin(pkt.Timestamp)
	for p := payload; n > 0; n-- {
		size := int(binary.BigEndian.Uint16(p))
		if err := d.add(p[2:2+size], keepAll); err != nil {
			return nil, err
		}
		p = p[2+size:]
	}
	d.started = true
	return d.end(pkt.Marker)
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// fragment takes a fragmentation unit, appending its data to the NAL unit
// in progress. A fragment that does not follow the previous one loses the
// NAL unit. The start and end bits may both be set, against RFC 6184 but
// as CostarHD cameras send small NAL units.
func (d *nalDepacketizer) fragment(pkt *rtp.Packet, keepAll bool) ([][]byte, error) {
	p := pkt.Payload
	if len(p) < d.c.headerSize+1 {
		d.dropFragment()
		return nil, errors.New("fragmentation unit without FU header")
	}
	fu, data := p[d.c.headerSize], p[d.c.headerSize+1:]
	if fu&fuStart != 0 {
		d.begin(pkt.Timestamp)
		d.frag, d.fragStart = true, len(d.buf)
		d.buf = d.c.fuNALUHeader(d.buf, p)
		d.fragCut = !keepAll && d.c.nonKeySlice(d.buf[d.fragStart:])
		d.fragSize = d.c.headerSize
		d.nextSeq = pkt.SequenceNumber
		d.started = true
	} else if !d.frag {
		if !d.started {
			return nil, errIncomplete // a session joined in the middle of a NAL unit
		}
		return nil, errors.New("fragmentation unit without its start")
	} else if pkt.SequenceNumber != d.nextSeq {
		d.dropFragment()
		return nil, errors.New("fragmented NAL unit lost a packet")
	}
	d.nextSeq++
	d.fragSize += len(data)
	if d.fragSize > d.c.maxAccessUnitSize {
		size := d.fragSize
		d.dropFragment()
		return nil, fmt.Errorf("NAL unit of %d bytes exceeds %d", size, d.c.maxAccessUnitSize)
	}
	if d.fragCut {
		if keep := d.c.headerSize + 1 - (len(d.buf) - d.fragStart); keep > 0 {
			d.buf = append(d.buf, data[:min(keep, len(data))]...)
		}
	} else {
		d.buf = append(d.buf, data...)
	}
	if fu&fuEnd == 0 {
		if pkt.Marker { // the access unit ends without the NAL unit's end
			d.dropFragment()
			return d.end(true)
		}
		return d.end(false)
	}
	d.frag = false
	if err := d.complete(d.fragStart, d.fragSize); err != nil {
		return nil, err
	}
	return d.end(pkt.Marker)
}

// keptBuffer bounds the buffer kept between access units: a key frame
// needs ten times more than the frames after it, and a hundred cameras
// holding on to theirs would keep tens of megabytes for nothing.
const keptBuffer = 32 << 10

// release drops the access unit that the previous call returned, moving
// what came after it to the start of the buffers.
func (d *nalDepacketizer) release() {
	if d.sent == 0 {
		return
	}
	rest := d.buf[d.sentBytes:]
	if cap(d.buf) > keptBuffer && len(rest) <= keptBuffer {
		d.buf = make([]byte, 0, keptBuffer)
	}
	d.buf = d.buf[:copy(d.buf[:len(rest)], rest)]
	d.nalus = d.nalus[:copy(d.nalus, d.nalus[d.sent:])]
	for i := range d.nalus {
		d.nalus[i].start -= d.sentBytes
		d.nalus[i].end -= d.sentBytes
	}
	d.fragStart -= d.sentBytes
	d.sent, d.sentBytes = 0, 0
}

// reset drops everything but started, after an error.
func (d *nalDepacketizer) reset() {
	d.buf, d.nalus = d.buf[:0], d.nalus[:0]
	d.size, d.sent, d.sentBytes = 0, 0, 0
	d.frag, d.damaged, d.returnedDamaged = false, false, false
}

// dropFragment drops the fragmented NAL unit in progress: unfinished where
// the call goes on without an error of its own.
func (d *nalDepacketizer) dropFragment() {
	if d.frag {
		d.buf = d.buf[:d.fragStart]
		d.frag = false
		d.unfinished, d.damaged = true, true
	}
}

// begin prepares for a packet that starts NAL units: a fragmented one in
// progress is lost, and at a new timestamp the access unit received so
// far is complete, the call returns it.
func (d *nalDepacketizer) begin(ts uint32) {
	d.dropFragment()
	if len(d.nalus) > 0 && ts == d.ts {
		return
	}
	if len(d.nalus) > 0 {
		d.sent, d.sentBytes = len(d.nalus), len(d.buf)
		d.returnedDamaged, d.damaged = d.damaged, false
	} else if ts != d.ts {
		d.damaged = false // an access unit of nothing but a dropped NAL unit is gone whole
	}
	d.ts, d.size = ts, 0
}

// end returns the access unit that begin cut at a new timestamp, or the
// one that the marker bit completes.
func (d *nalDepacketizer) end(marker bool) ([][]byte, error) {
	if d.sent == 0 {
		if !marker {
			return nil, errIncomplete
		}
		damaged := d.damaged
		d.damaged = false
		if len(d.nalus) == 0 { // all it had was an unfinished fragment
			return nil, errIncomplete
		}
		d.sent, d.sentBytes, d.size, d.returnedDamaged = len(d.nalus), len(d.buf), 0, damaged
	}
	d.au = d.au[:0]
	for _, s := range d.nalus[:d.sent] {
		d.au = append(d.au, d.buf[s.start:s.end:s.end])
	}
	return d.au[:len(d.au):len(d.au)], nil
}

// add appends a complete NAL unit, cut to its head if it is a non-key
// slice that is not to be kept whole.
func (d *nalDepacketizer) add(nalu []byte, keepAll bool) error {
	start, size := len(d.buf), len(nalu)
	if !keepAll && d.c.nonKeySlice(nalu) {
		nalu = nalu[:min(size, d.c.headerSize+1)]
	}
	d.buf = append(d.buf, nalu...)
	return d.complete(start, size)
}

// complete adds the NAL unit in buf from start on to the access unit, size
// bytes as received. Some cameras wrap NAL units in the Annex-B format,
// start codes before or between them: a NAL unit that holds a start code
// is split at them. Non-key slices, the bulk of a stream and never
// wrapped alone (a start code first makes a type no slice has), are not
// searched.
func (d *nalDepacketizer) complete(start, size int) error {
	nalu := d.buf[start:]
	if d.c.nonKeySlice(nalu) || !bytes.Contains(nalu, annexBStartCode) {
		d.nalus = append(d.nalus, naluSpan{start, len(d.buf)})
	} else if !d.splitAnnexB(start) {
		d.reset()
		return errors.New("Annex-B NAL unit without NAL units")
	}
	if n := len(d.nalus) - d.sent; n > d.c.maxNALUs {
		d.reset()
		return fmt.Errorf("access unit of %d NAL units exceeds %d", n, d.c.maxNALUs)
	}
	d.size += size
	if d.size > d.c.maxAccessUnitSize {
		size := d.size
		d.reset()
		return fmt.Errorf("access unit of %d bytes exceeds %d", size, d.c.maxAccessUnitSize)
	}
	return nil
}

// splitAnnexB adds the NAL units that start codes separate in buf from
// start on, as mediacommon's h264.AnnexB does: zeros before a 3-byte start
// code but one stay with the NAL unit before, empty ones are skipped. It
// reports whether there were any.
func (d *nalDepacketizer) splitAnnexB(start int) bool {
	b := d.buf[start:]
	found := false
	for from := 0; ; {
		i := bytes.Index(b[from:], annexBStartCode)
		end := len(b)
		if i >= 0 {
			end = from + i
			if end > from && b[end-1] == 0 { // a 4-byte start code
				end--
			}
		}
		if end > from {
			d.nalus = append(d.nalus, naluSpan{start + from, start + end})
			found = true
		}
		if i < 0 {
			return found
		}
		from += i + len(annexBStartCode)
	}
}
