package camera

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/pion/rtp"

	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
)

// depacketizeCodecs are the codecs of nalDepacketizer, each with NAL units
// of the kinds it tells apart and the RTP payloads that carry them.
var depacketizeCodecs = []struct {
	codec rtsptest.Codec
	nal   *nalCodec
	// param, sei and key are kept whole; slice, a non-key slice, only
	// when all is kept.
	param, sei, key, slice []byte
	aggregationHeader      []byte
	unsupported            []byte // packet types
	// fragment makes the payload of a fragmentation unit of nalu's data.
	fragment func(nalu []byte, start, end bool, data []byte) []byte
	// gortsplib is its RTP decoder.
	gortsplib func(t testing.TB) func(*rtp.Packet) ([][]byte, error)
	// packetize is its RTP encoder.
	packetize func(t testing.TB, maxPayload int) func([][]byte) ([]*rtp.Packet, error)
}{
	{
		codec:             rtsptest.H264,
		nal:               &h264Codec,
		param:             []byte{0x68, 0xce, 0x3c, 0x80},
		sei:               []byte{0x06, 0x05, 0x02, 0xaa, 0xbb, 0x80},
		key:               []byte{0x65, 0x88, 0x84, 0x00, 0x33, 0xff, 0x12, 0x34},
		slice:             []byte{0x41, 0x9a, 0x21, 0x6c, 0x42, 0x7f, 0x00, 0x03, 0x01, 0x09},
		aggregationHeader: []byte{0x78},
		unsupported:       []byte{25, 26, 27, 29},
		fragment: func(nalu []byte, start, end bool, data []byte) []byte {
			return append([]byte{nalu[0]&0xe0 | 28, fuBits(start, end) | nalu[0]&0x1f}, data...)
		},
		gortsplib: func(t testing.TB) func(*rtp.Packet) ([][]byte, error) {
			dec, err := (&format.H264{PayloadTyp: 96, PacketizationMode: 1}).CreateDecoder()
			if err != nil {
				t.Fatal(err)
			}
			return func(pkt *rtp.Packet) ([][]byte, error) {
				au, err := dec.Decode(pkt)
				if errors.Is(err, rtph264.ErrMorePacketsNeeded) || errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious) {
					return nil, errIncomplete
				}
				return au, err
			}
		},
		packetize: func(t testing.TB, maxPayload int) func([][]byte) ([]*rtp.Packet, error) {
			enc, err := (&format.H264{PayloadTyp: 96, PacketizationMode: 1}).CreateEncoder()
			if err != nil {
				t.Fatal(err)
			}
			enc.PayloadMaxSize = maxPayload
			return enc.Encode
		},
	},
	{
		codec:             rtsptest.H265,
		nal:               &h265Codec,
		param:             []byte{0x44, 0x01, 0xc1, 0x72, 0xb4, 0x62, 0x40},
		sei:               []byte{0x4e, 0x01, 0x05, 0x02, 0xaa, 0xbb, 0x80},
		key:               []byte{0x26, 0x01, 0xaf, 0x06, 0xb8, 0x00, 0x33, 0xff},
		slice:             []byte{0x02, 0x01, 0xd0, 0x21, 0x6c, 0x42, 0x7f, 0x00, 0x03, 0x01},
		aggregationHeader: []byte{0x60, 0x01},
		unsupported:       []byte{50},
		fragment: func(nalu []byte, start, end bool, data []byte) []byte {
			return append([]byte{nalu[0]&0x81 | 49<<1, nalu[1], fuBits(start, end) | (nalu[0]>>1)&0x3f}, data...)
		},
		gortsplib: func(t testing.TB) func(*rtp.Packet) ([][]byte, error) {
			dec, err := (&format.H265{PayloadTyp: 96}).CreateDecoder()
			if err != nil {
				t.Fatal(err)
			}
			return func(pkt *rtp.Packet) ([][]byte, error) {
				au, err := dec.Decode(pkt)
				if errors.Is(err, rtph265.ErrMorePacketsNeeded) || errors.Is(err, rtph265.ErrNonStartingPacketAndNoPrevious) {
					return nil, errIncomplete
				}
				return au, err
			}
		},
		packetize: func(t testing.TB, maxPayload int) func([][]byte) ([]*rtp.Packet, error) {
			enc, err := (&format.H265{PayloadTyp: 96}).CreateEncoder()
			if err != nil {
				t.Fatal(err)
			}
			enc.PayloadMaxSize = maxPayload
			return enc.Encode
		},
	},
}

func fuBits(start, end bool) byte {
	var b byte
	if start {
		b |= fuStart
	}
	if end {
		b |= fuEnd
	}
	return b
}

// aggregation is the payload of an aggregation packet of nalus.
func aggregation(header []byte, nalus ...[]byte) []byte {
	p := slices.Clone(header)
	for _, n := range nalus {
		p = binary.BigEndian.AppendUint16(p, uint16(len(n)))
		p = append(p, n...)
	}
	return p
}

// fragments splits nalu into n fragmentation units.
func fragments(fragment func([]byte, bool, bool, []byte) []byte, headerSize int, nalu []byte, n int) [][]byte {
	data := nalu[headerSize:]
	var out [][]byte
	for i := range n {
		part := data[i*len(data)/n : (i+1)*len(data)/n]
		out = append(out, fragment(nalu, i == 0, i == n-1, part))
	}
	return out
}

func annexB(nalus ...[]byte) []byte {
	var b []byte
	for _, n := range nalus {
		b = append(append(b, 0, 0, 0, 1), n...)
	}
	return b
}

// depacketizeStep is a packet and what depacketize returns for it: an
// access unit, an error (err), both, or errIncomplete (neither).
type depacketizeStep struct {
	payload []byte
	marker  bool
	ts      uint32 // added to the timestamp of the packet before
	lost    bool   // the packet before this one was lost
	want    [][]byte
	err     bool
	// unfinished: the error is errUnfinishedFragment, err implied.
	unfinished bool
	// damaged: the access unit lost a fragmented NAL unit, in this call
	// or an earlier one.
	damaged bool
	whole   bool // non-key slices in want are whole in key-frame mode too
}

func runSteps(t *testing.T, d *nalDepacketizer, keepAll bool, steps []depacketizeStep) {
	t.Helper()
	var seq uint16 = 65530 // wraps
	var ts uint32 = 1 << 31
	for i, st := range steps {
		if st.lost {
			seq++
		}
		ts += st.ts
		au, err := d.depacketize(&rtp.Packet{
			Header:  rtp.Header{Version: 2, Marker: st.marker, PayloadType: 96, SequenceNumber: seq, Timestamp: ts},
			Payload: st.payload,
		}, keepAll)
		seq++
		if au != nil && d.returnedDamaged != st.damaged {
			t.Fatalf("packet %d: access unit damaged %v, want %v", i, d.returnedDamaged, st.damaged)
		}
		switch {
		case st.unfinished && !errors.Is(err, errUnfinishedFragment):
			t.Fatalf("packet %d: %d NAL units, error %v, want %v", i, len(au), err, errUnfinishedFragment)
		case st.err && (err == nil || errors.Is(err, errIncomplete)):
			t.Fatalf("packet %d: %d NAL units, error %v, want an error", i, len(au), err)
		case st.err || st.unfinished:
			if !slices.EqualFunc(au, st.want, bytes.Equal) {
				t.Fatalf("packet %d: access unit\n%x\nwith the error, want\n%x", i, au, st.want)
			}
		case st.want == nil:
			if !errors.Is(err, errIncomplete) {
				t.Fatalf("packet %d: %d NAL units, error %v, want errIncomplete", i, len(au), err)
			}
		case err != nil:
			t.Fatalf("packet %d: error %v, want %d NAL units", i, err, len(st.want))
		case !slices.EqualFunc(au, st.want, bytes.Equal):
			t.Fatalf("packet %d: access unit\n%x\nwant\n%x", i, au, st.want)
		}
	}
}

func TestDepacketize(t *testing.T) {
	for _, cc := range depacketizeCodecs {
		t.Run(string(cc.codec), func(t *testing.T) {
			h := cc.nal.headerSize
			param, sei, key, slice := cc.param, cc.sei, cc.key, cc.slice
			agg := func(nalus ...[]byte) []byte { return aggregation(cc.aggregationHeader, nalus...) }
			frags := func(nalu []byte, n int) [][]byte { return fragments(cc.fragment, h, nalu, n) }
			keyFU, sliceFU := frags(key, 3), frags(slice, 3)
			// unended is a fragmentation unit with its end bit cleared.
			unended := func(fu []byte) []byte {
				fu = slices.Clone(fu)
				fu[h] &^= fuEnd
				return fu
			}
			au := func(nalus ...[]byte) [][]byte { return nalus }
			// 8 fit in the size limit, header included, 9 do not.
			large := bytes.Repeat([]byte{0xab}, 1<<20-16)
			for _, tc := range []struct {
				name  string
				steps []depacketizeStep
			}{
				{"single NAL units", []depacketizeStep{
					{payload: param},
					{payload: sei},
					{payload: key, marker: true, want: au(param, sei, key)},
					{payload: slice, marker: true, ts: 3600, want: au(slice)},
				}},
				{"aggregation", []depacketizeStep{
					{payload: agg(param, sei, key), marker: true, want: au(param, sei, key)},
					{payload: agg(slice), ts: 3600},
					{payload: agg(slice, slice), marker: true, want: au(slice, slice, slice)},
				}},
				{"aggregation with zero padding", []depacketizeStep{
					{payload: append(agg(param, key), 0, 0, 0), marker: true, want: au(param, key)},
				}},
				{"malformed aggregation", []depacketizeStep{
					{payload: param},
					{payload: agg(), err: true},
					{payload: agg(sei)[:len(cc.aggregationHeader)+3], err: true},
					{payload: append(agg(sei), 0, 0, 1), err: true},
					{payload: agg(sei)[:len(cc.aggregationHeader)+1], err: true},
					{payload: append(slices.Clone(cc.aggregationHeader), 0, 0, 0), err: true}, // padding only
					{payload: key, marker: true, want: au(param, key)},
				}},
				{"fragmentation units", []depacketizeStep{
					{payload: param},
					{payload: keyFU[0]},
					{payload: keyFU[1]},
					{payload: keyFU[2], marker: true, want: au(param, key)},
					{payload: sliceFU[0], ts: 3600},
					{payload: sliceFU[1]},
					{payload: sliceFU[2], marker: true, want: au(slice)},
				}},
				{"start and end in one fragmentation unit", []depacketizeStep{
					{payload: cc.fragment(slice, true, true, slice[h:]), marker: true, want: au(slice)},
				}},
				{"empty fragments", []depacketizeStep{
					{payload: cc.fragment(key, true, false, nil)},
					{payload: cc.fragment(key, false, false, key[h:])},
					{payload: cc.fragment(key, false, true, nil), marker: true, want: au(key)},
				}},
				{"fragment lost", []depacketizeStep{
					{payload: param},
					{payload: keyFU[0]},
					{payload: keyFU[2], lost: true, err: true},
					{payload: sliceFU[1], err: true}, // no start: an error once a packet came
					{payload: sei, marker: true, want: au(param, sei), damaged: true},
				}},
				{"fragment without FU header", []depacketizeStep{
					{payload: keyFU[0]},
					{payload: keyFU[1][:h], err: true},
					{payload: keyFU[2], err: true},
				}},
				{"session joined in a fragmented NAL unit", []depacketizeStep{
					{payload: keyFU[1]},
					{payload: keyFU[2], marker: true},
					{payload: sliceFU[0], ts: 3600},
					{payload: sliceFU[1]},
					{payload: sliceFU[2], marker: true, want: au(slice)},
				}},
				{"interrupted fragmented NAL unit", []depacketizeStep{
					{payload: keyFU[0]},
					{payload: keyFU[1]},
					{payload: sei, marker: true, want: au(sei), unfinished: true, damaged: true},
					{payload: keyFU[2], err: true},
				}},
				{"fragmented NAL unit interrupted by an aggregation packet", []depacketizeStep{
					{payload: keyFU[0]},
					{payload: agg(param, sei), marker: true, want: au(param, sei), unfinished: true, damaged: true},
				}},
				{"fragmented NAL unit interrupted by another", []depacketizeStep{
					{payload: keyFU[0]},
					{payload: keyFU[1]},
					{payload: sliceFU[0], unfinished: true},
					{payload: sliceFU[1]},
					// The error came first: the access unit missing the key
					// slice comes without one, damaged.
					{payload: sliceFU[2], marker: true, want: au(slice), damaged: true},
					{payload: slice, ts: 3600, marker: true, want: au(slice)},
				}},
				{"fragmented NAL unit interrupted by the next access unit", []depacketizeStep{
					{payload: param},
					{payload: keyFU[0]},
					{payload: keyFU[1]},
					{payload: slice, ts: 3600, want: au(param), unfinished: true, damaged: true},
					{payload: sei, marker: true, want: au(slice, sei)},
				}},
				{"marker without the end bit", []depacketizeStep{
					{payload: param},
					{payload: keyFU[0]},
					{payload: keyFU[1]},
					{payload: unended(keyFU[2]), marker: true, want: au(param), unfinished: true, damaged: true},
					{payload: sliceFU[0], ts: 3600},
					{payload: sliceFU[1]},
					{payload: sliceFU[2], marker: true, want: au(slice)},
				}},
				{"marker without the end bit, the fragment alone", []depacketizeStep{
					{payload: keyFU[0]},
					{payload: keyFU[1]},
					{payload: unended(keyFU[2]), marker: true, unfinished: true},
					{payload: sliceFU[0], ts: 3600},
					{payload: sliceFU[1]},
					{payload: unended(sliceFU[2]), marker: true, unfinished: true},
					{payload: unended(cc.fragment(slice, true, true, slice[h:])), ts: 3600, marker: true, unfinished: true},
					{payload: slice, ts: 3600, marker: true, want: au(slice)},
				}},
				{"timestamp ends an access unit without marker", []depacketizeStep{
					{payload: param},
					{payload: key},
					{payload: slice, ts: 3600, want: au(param, key)},
					{payload: sei},
					{payload: sliceFU[0], ts: 3600, want: au(slice, sei)},
					{payload: sliceFU[1]},
					{payload: sliceFU[2]},
					{payload: agg(sei, slice), ts: 3600, want: au(slice)},
					{payload: keyFU[0]},
					{payload: keyFU[1]},
					{payload: keyFU[2]},
					// The marker of a packet that ends the previous access
					// unit does not end its own.
					{payload: cc.fragment(slice, true, true, slice[h:]), ts: 3600, marker: true, want: au(sei, slice, key)},
					{payload: param, ts: 3600, want: au(slice)},
					{payload: key, marker: true, want: au(param, key)},
				}},
				{"Annex-B", []depacketizeStep{
					{payload: annexB(param, sei, key), marker: true, want: au(param, sei, key)},
					// 3-byte start codes, none first, zeros before one.
					{payload: slices.Concat(param, []byte{0, 0, 1}, sei, []byte{0, 0, 0, 0, 1}, key), marker: true, ts: 3600,
						want: au(param, append(slices.Clone(sei), 0), key)},
					// A fragmented parameter set followed by the key frame, as a
					// V380 camera sends it (gortsplib issue 199).
					{payload: cc.fragment(param, true, false, param[h:]), ts: 3600},
					{payload: cc.fragment(param, false, true, annexB(key)), marker: true, want: au(param, key)},
					// A start code first makes a NAL unit type of no slice.
					{payload: annexB(slice), marker: true, ts: 3600, want: au(slice), whole: true},
					{payload: annexB(), marker: true, err: true},
				}},
				{"payload shorter than a header", []depacketizeStep{
					{payload: keyFU[0]},
					{payload: key[:h-1], err: true},
					{payload: keyFU[1], err: true},
				}},
				{"NAL units beyond the limit", slices.Concat(
					slices.Repeat([]depacketizeStep{{payload: sei}}, cc.nal.maxNALUs),
					[]depacketizeStep{
						{payload: sei, err: true},
						{payload: key, marker: true, want: au(key)},
					})},
				{"aggregated NAL units beyond the limit", []depacketizeStep{
					{payload: param},
					{payload: agg(slices.Repeat([][]byte{sei}, cc.nal.maxNALUs)...), err: true},
					{payload: key, marker: true, want: au(key)},
				}},
				{"access unit beyond the size limit", slices.Concat(
					[]depacketizeStep{{payload: append(slices.Clone(key), large...)}},
					slices.Repeat([]depacketizeStep{{payload: append(slices.Clone(sei), large...)}}, cc.nal.maxAccessUnitSize>>20-1),
					[]depacketizeStep{
						{payload: append(slices.Clone(sei), large...), err: true},
						{payload: param, marker: true, want: au(param)},
					})},
				{"cut slices count whole toward the size limit", slices.Concat(
					slices.Repeat([]depacketizeStep{{payload: append(slices.Clone(slice), large...)}}, cc.nal.maxAccessUnitSize>>20),
					[]depacketizeStep{
						{payload: append(slices.Clone(slice), large...), err: true},
						{payload: param, marker: true, want: au(param)},
					})},
				{"cut fragmented slice counts whole toward the size limit", slices.Concat(
					[]depacketizeStep{{payload: cc.fragment(slice, true, false, large)}},
					slices.Repeat([]depacketizeStep{{payload: cc.fragment(slice, false, false, large)}}, cc.nal.maxAccessUnitSize>>20-1),
					[]depacketizeStep{
						{payload: cc.fragment(slice, false, false, large), err: true},
						{payload: param, marker: true, want: au(param), damaged: true},
					})},
				{"fragmented NAL unit beyond the size limit", slices.Concat(
					[]depacketizeStep{{payload: cc.fragment(key, true, false, large)}},
					slices.Repeat([]depacketizeStep{{payload: cc.fragment(key, false, false, large)}}, cc.nal.maxAccessUnitSize>>20-1),
					[]depacketizeStep{
						{payload: cc.fragment(key, false, false, large), err: true},
						{payload: sliceFU[1], err: true},
						{payload: param, marker: true, want: au(param), damaged: true},
					})},
			} {
				t.Run(tc.name, func(t *testing.T) {
					for _, keepAll := range []bool{false, true} {
						steps := tc.steps
						if !keepAll {
							// Only the non-key slices change.
							steps = slices.Clone(steps)
							for i, st := range steps {
								if st.whole {
									continue
								}
								steps[i].want = slices.Clone(st.want)
								for j, n := range st.want {
									if bytes.Equal(n, slice) {
										steps[i].want[j] = slice[:h+1]
									}
								}
							}
						}
						runSteps(t, &nalDepacketizer{c: cc.nal}, keepAll, steps)
					}
				})
			}
			t.Run("unsupported packet types", func(t *testing.T) {
				for _, typ := range cc.unsupported {
					p := slices.Clone(cc.aggregationHeader)
					if h == 1 {
						p[0] = p[0]&0xe0 | typ
					} else {
						p[0] = p[0]&0x81 | typ<<1
					}
					runSteps(t, &nalDepacketizer{c: cc.nal}, true, []depacketizeStep{
						{payload: keyFU[0]},
						{payload: append(p, 1, 2, 3, 4), err: true},
						{payload: keyFU[1], err: true},
					})
				}
			})
		})
	}
}

// TestDepacketizeCut checks what key-frame mode keeps of each kind of NAL
// unit: non-key slices their header and one byte, the rest whole.
func TestDepacketizeCut(t *testing.T) {
	for _, cc := range depacketizeCodecs {
		h := cc.nal.headerSize
		for _, tc := range []struct {
			name string
			nalu []byte
			cut  bool
		}{
			{"parameter set", cc.param, false},
			{"SEI", cc.sei, false},
			{"key slice", cc.key, false},
			{"non-key slice", cc.slice, true},
			{"non-key slice of a header only", cc.slice[:h], true},
		} {
			t.Run(fmt.Sprintf("%s %s", cc.codec, tc.name), func(t *testing.T) {
				for _, keepAll := range []bool{false, true} {
					want := tc.nalu
					if tc.cut && !keepAll {
						want = tc.nalu[:min(len(tc.nalu), h+1)]
					}
					d := &nalDepacketizer{c: cc.nal}
					var steps []depacketizeStep
					for n := 1; n <= len(tc.nalu)-h && n <= 4; n++ {
						for i, p := range fragments(cc.fragment, h, tc.nalu, n) {
							st := depacketizeStep{payload: p}
							if i == 0 {
								st.ts = 3600
							}
							steps = append(steps, st)
						}
						steps[len(steps)-1].marker, steps[len(steps)-1].want = true, [][]byte{want}
					}
					steps = append(steps, depacketizeStep{payload: tc.nalu, ts: 3600, marker: true, want: [][]byte{want}})
					runSteps(t, d, keepAll, steps)
				}
			})
		}
	}
}

// depacketizeClip packetizes a clip's access units as cameras do, in a
// loop of rounds, with sequence numbers and timestamps.
func depacketizeClip(t testing.TB, encode func([][]byte) ([]*rtp.Packet, error), clip *rtsptest.Media, rounds int) []*rtp.Packet {
	var pkts []*rtp.Packet
	var seq uint16
	var ts uint32
	for range rounds {
		for _, au := range clip.AccessUnits {
			ps, err := encode(au)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range ps {
				p.SequenceNumber, p.Timestamp = seq, ts
				seq++
			}
			pkts = append(pkts, ps...)
			ts += 3600
		}
	}
	return pkts
}

// TestDepacketizeLikeGortsplib: where all is kept, ours gives the access
// units of gortsplib's decoders, of encoded clips packetized by
// gortsplib's encoders, with losses and without the marker bit too.
func TestDepacketizeLikeGortsplib(t *testing.T) {
	for _, cc := range depacketizeCodecs {
		t.Run(string(cc.codec), func(t *testing.T) {
			t.Parallel()
			clip := rtsptest.Clip(t, cc.codec, "testsrc2=s=320x240:r=25,noise=alls=20:allf=t", 30, "-bf", "2")
			for _, tc := range []struct {
				name       string
				maxPayload int
				edit       func([]*rtp.Packet) []*rtp.Packet
				// Where a lost packet ends an access unit, ours does at the
				// first packet of the next timestamp, gortsplib's H264 decoder
				// where a NAL unit of it completes, its H265 one never: the
				// NAL units are the same, and as many errors but those of
				// NAL units whose end fragment was lost, which gortsplib
				// drops without one.
				lossy bool
			}{
				{"large packets", 1460, nil, false},
				{"small packets", 100, nil, false},
				{"lost packets", 300, func(pkts []*rtp.Packet) []*rtp.Packet {
					return slices.DeleteFunc(pkts, func(p *rtp.Packet) bool { return p.SequenceNumber%37 == 5 })
				}, true},
				{"no marker", 300, func(pkts []*rtp.Packet) []*rtp.Packet {
					if cc.codec != rtsptest.H264 {
						return nil // gortsplib's H265 decoder needs the marker
					}
					for _, p := range pkts {
						p.Marker = false
					}
					return pkts
				}, false},
			} {
				t.Run(tc.name, func(t *testing.T) {
					pkts := depacketizeClip(t, cc.packetize(t, tc.maxPayload), clip, 2)
					if tc.edit != nil {
						if pkts = tc.edit(pkts); pkts == nil {
							t.Skip()
						}
					}
					collect := func(depacketize func(*rtp.Packet) ([][]byte, error)) (aus [][][]byte, errs int) {
						for _, p := range pkts {
							au, err := depacketize(p)
							if err != nil && !errors.Is(err, errIncomplete) && !errors.Is(err, errUnfinishedFragment) {
								errs++
							}
							if au != nil {
								aus = append(aus, cloneAU(au))
							}
						}
						return aus, errs
					}
					ours := &nalDepacketizer{c: cc.nal}
					got, gotErrs := collect(func(p *rtp.Packet) ([][]byte, error) { return ours.depacketize(p, true) })
					want, wantErrs := collect(cc.gortsplib(t))
					if len(got) == 0 || tc.edit == nil && len(got) != 2*len(clip.AccessUnits) {
						t.Fatalf("%d access units from %d packets of %d", len(got), len(pkts), 2*len(clip.AccessUnits))
					}
					if tc.lossy {
						g, w := slices.Concat(got...), slices.Concat(want...)
						if gotErrs != wantErrs || len(g) < len(w) || !slices.EqualFunc(g[:len(w)], w, bytes.Equal) {
							t.Fatalf("%d NAL units and %d errors, gortsplib %d and %d, or their bytes differ", len(g), gotErrs, len(w), wantErrs)
						}
						return
					}
					if len(got) != len(want) || gotErrs != wantErrs {
						t.Fatalf("%d access units and %d errors, gortsplib %d and %d", len(got), gotErrs, len(want), wantErrs)
					}
					for i := range got {
						if !slices.EqualFunc(got[i], want[i], bytes.Equal) {
							t.Fatalf("access unit %d: %d NAL units, gortsplib %d, or their bytes differ", i, len(got[i]), len(want[i]))
						}
					}
				})
			}
		})
	}
}

// TestDepacketizeAllocs: once its buffers have grown, the depacketizer
// allocates nothing per packet, whether it cuts non-key slices or not.
func TestDepacketizeAllocs(t *testing.T) {
	for _, cc := range depacketizeCodecs {
		t.Run(string(cc.codec), func(t *testing.T) {
			clip := rtsptest.Clip(t, cc.codec, "testsrc2=s=320x240:r=25", 25)
			pkts := depacketizeClip(t, cc.packetize(t, 1200), clip, 1)
			for _, keepAll := range []bool{false, true} {
				tr := &nalTrack{c: cc.nal, dep: nalDepacketizer{c: cc.nal}}
				run := func() {
					for _, p := range pkts {
						if _, _, err := tr.depacketize(p, keepAll); err != nil && !errors.Is(err, errIncomplete) {
							t.Fatal(err)
						}
					}
				}
				run() // the buffers grow
				if allocs := testing.AllocsPerRun(5, run); allocs != 0 {
					t.Errorf("keep all %v: %.1f allocations per %d packets, want 0", keepAll, allocs, len(pkts))
				}
			}
		})
	}
}

// BenchmarkDepacketize depacketizes 2 s of a camera's 1080p25 4 Mb/s
// stream: ours in key-frame mode (non-key slices cut) and keeping all, and
// gortsplib's decoder (go test -run '^$' -bench Depacketize/h264 ./camera/).
func BenchmarkDepacketize(b *testing.B) {
	for _, cc := range depacketizeCodecs {
		b.Run(string(cc.codec), func(b *testing.B) {
			clip := rtsptest.Clip(b, cc.codec, "testsrc2=s=1920x1080:r=25", 50,
				"-preset", "veryfast", "-b:v", "4M", "-maxrate", "4M", "-bufsize", "8M")
			pkts := depacketizeClip(b, cc.packetize(b, 1460), clip, 1)
			ours := func(keepAll bool) func() func(*rtp.Packet) ([][]byte, error) {
				return func() func(*rtp.Packet) ([][]byte, error) {
					d := &nalDepacketizer{c: cc.nal}
					return func(p *rtp.Packet) ([][]byte, error) { return d.depacketize(p, keepAll) }
				}
			}
			for _, tc := range []struct {
				name string
				new  func() func(*rtp.Packet) ([][]byte, error)
			}{
				{"keyframes", ours(false)},
				{"all", ours(true)},
				{"gortsplib", func() func(*rtp.Packet) ([][]byte, error) { return cc.gortsplib(b) }},
			} {
				b.Run(tc.name, func(b *testing.B) {
					b.ReportAllocs()
					depacketize := tc.new()
					for b.Loop() {
						for _, p := range pkts {
							if _, err := depacketize(p); err != nil && !errors.Is(err, errIncomplete) {
								b.Fatal(err)
							}
						}
					}
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(pkts)), "ns/packet")
				})
			}
		})
	}
}
