package camera

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/pion/rtp"

	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
	"github.com/camera-exporter/camera_exporter/video"
)

// nalTrackCodecs are the codecs nalTrack serves, each with what the test
// needs to build its SDP format and to read NAL unit types on its own.
var nalTrackCodecs = []struct {
	codec      rtsptest.Codec
	nal        *nalCodec
	headerSize int
	paramTypes []byte // VPS, SPS, PPS as the codec has them, in decoder order
	naluType   func([]byte) byte
	// newFormat returns the SDP format, with params (in decoder order)
	// when not nil.
	newFormat func(params [][]byte) format.Format
	// packetize makes RTP packets of payloads at most maxPayload bytes.
	packetize func(t *testing.T, au [][]byte, maxPayload int) []*rtp.Packet
}{
	{
		codec:      rtsptest.H264,
		nal:        &h264Codec,
		headerSize: 1,
		paramTypes: []byte{7, 8},
		naluType:   func(n []byte) byte { return n[0] & 0x1f },
		newFormat: func(params [][]byte) format.Format {
			f := &format.H264{PayloadTyp: 96, PacketizationMode: 1}
			if params != nil {
				f.SPS, f.PPS = params[0], params[1]
			}
			return f
		},
		packetize: func(t *testing.T, au [][]byte, maxPayload int) []*rtp.Packet {
			f := &format.H264{PayloadTyp: 96, PacketizationMode: 1}
			enc, err := f.CreateEncoder()
			if err != nil {
				t.Fatal(err)
			}
			enc.PayloadMaxSize = maxPayload
			pkts, err := enc.Encode(au)
			if err != nil {
				t.Fatal(err)
			}
			return pkts
		},
	},
	{
		codec:      rtsptest.H265,
		nal:        &h265Codec,
		headerSize: 2,
		paramTypes: []byte{32, 33, 34},
		naluType:   func(n []byte) byte { return (n[0] >> 1) & 0x3f },
		newFormat: func(params [][]byte) format.Format {
			f := &format.H265{PayloadTyp: 96}
			if params != nil {
				f.VPS, f.SPS, f.PPS = params[0], params[1], params[2]
			}
			return f
		},
		packetize: func(t *testing.T, au [][]byte, maxPayload int) []*rtp.Packet {
			f := &format.H265{PayloadTyp: 96}
			enc, err := f.CreateEncoder()
			if err != nil {
				t.Fatal(err)
			}
			enc.PayloadMaxSize = maxPayload
			pkts, err := enc.Encode(au)
			if err != nil {
				t.Fatal(err)
			}
			return pkts
		},
	},
}

func TestNALTrack(t *testing.T) {
	for _, cc := range nalTrackCodecs {
		t.Run(string(cc.codec), func(t *testing.T) {
			t.Parallel()
			small := rtsptest.Clip(t, cc.codec, "color=c=gray:s=320x240:r=25", 25)
			large := rtsptest.Clip(t, cc.codec, "color=c=gray:s=640x480:r=25", 1)
			key, delta := small.AccessUnits[0], small.AccessUnits[1]

			isParamSet := func(nalu []byte) bool { return slices.Contains(cc.paramTypes, cc.naluType(nalu)) }
			// paramSets returns au's parameter sets in decoder order.
			paramSets := func(t *testing.T, au [][]byte) [][]byte {
				t.Helper()
				var ps [][]byte
				for _, typ := range cc.paramTypes {
					i := slices.IndexFunc(au, func(n []byte) bool { return cc.naluType(n) == typ })
					if i < 0 {
						t.Fatalf("access unit has no parameter set of type %d", typ)
					}
					ps = append(ps, au[i])
				}
				return ps
			}
			// others returns au without its parameter sets.
			others := func(au [][]byte) [][]byte {
				return slices.DeleteFunc(slices.Clone(au), isParamSet)
			}
			// newTrack finds the track of a session as Stream does.
			newTrack := func(t *testing.T, params [][]byte) track {
				t.Helper()
				_, _, tr, err := findTrack(&description.Session{Medias: []*description.Media{{
					Type: description.MediaTypeVideo, Formats: []format.Format{cc.newFormat(params)},
				}}})
				if err != nil {
					t.Fatal(err)
				}
				if tr.codec() != video.Codec(cc.codec) {
					t.Errorf("codec() = %s, want %s", tr.codec(), cc.codec)
				}
				return tr
			}
			// checkKeyframe wants got to be params then others, copied.
			checkKeyframe := func(t *testing.T, got, params, others [][]byte) {
				t.Helper()
				want := append(slices.Clone(params), others...)
				if g, w := types(got, cc.naluType), types(want, cc.naluType); !slices.Equal(g, w) {
					t.Fatalf("key frame has NAL units of types %v, want %v", g, w)
				}
				for i := range got {
					if !bytes.Equal(got[i], want[i]) {
						t.Fatalf("key frame NAL unit %d (type %d) differs", i, cc.naluType(got[i]))
					}
					if &got[i][0] == &want[i][0] {
						t.Fatalf("key frame NAL unit %d shares the input's buffer", i)
					}
				}
			}
			// observed is the key frame of au once observed, as Stream has it.
			observed := func(t *testing.T, tr track, au [][]byte) [][]byte {
				t.Helper()
				if err := tr.observe(au); err != nil {
					t.Fatal(err)
				}
				return tr.keyframe(au)
			}
			checkSize := func(t *testing.T, tr track, width, height int) {
				t.Helper()
				if w, h := tr.size(); w != width || h != height {
					t.Errorf("size() = %dx%d, want %dx%d", w, h, width, height)
				}
			}

			for _, tc := range []struct {
				name string
				run  func(t *testing.T)
			}{
				{"in-band parameter sets", func(t *testing.T) {
					tr := newTrack(t, nil)
					checkSize(t, tr, 0, 0)
					checkKeyframe(t, observed(t, tr, key), paramSets(t, key), others(key))
					checkSize(t, tr, 320, 240)
				}},
				{"empty SDP parameter sets", func(t *testing.T) {
					empty := make([][]byte, len(cc.paramTypes))
					for i := range empty {
						empty[i] = []byte{}
					}
					tr := newTrack(t, empty)
					checkKeyframe(t, observed(t, tr, key), paramSets(t, key), others(key))
					checkSize(t, tr, 320, 240)
				}},
				{"non-key access unit", func(t *testing.T) {
					tr := newTrack(t, nil)
					observed(t, tr, key)
					if got := observed(t, tr, delta); got != nil {
						t.Errorf("keyframe() of a non-key access unit = types %v, want nil", types(got, cc.naluType))
					}
					checkSize(t, tr, 320, 240)
				}},
				{"picture", func(t *testing.T) {
					tr := newTrack(t, nil)
					for _, tc := range []struct {
						name string
						au   [][]byte
						want bool
					}{
						{"key frame", key, true},
						{"delta frame", delta, true},
						{"key frame without its slice", key[:len(key)-1], false},
						{"parameter sets", paramSets(t, key), false},
					} {
						if got := tr.picture(tc.au); got != tc.want {
							t.Errorf("picture(%s: types %v) = %v, want %v", tc.name, types(tc.au, cc.naluType), got, tc.want)
						}
					}
				}},
				{"SDP parameter sets", func(t *testing.T) {
					tr := newTrack(t, paramSets(t, key))
					checkSize(t, tr, 320, 240)
					checkKeyframe(t, observed(t, tr, others(key)), paramSets(t, key), others(key))
				}},
				{"changed SPS", func(t *testing.T) {
					tr := newTrack(t, paramSets(t, key))
					next := large.AccessUnits[0]
					checkKeyframe(t, observed(t, tr, next), paramSets(t, next), others(next))
					checkSize(t, tr, 640, 480)
				}},
				{"parameter sets by id", func(t *testing.T) {
					tr := newTrack(t, nil)
					params := paramSets(t, key)
					pps := params[len(params)-1]
					pps1 := WithPPSID(pps, cc.headerSize, 1)
					au := append(slices.Clone(key), pps1)
					checkKeyframe(t, observed(t, tr, au), append(slices.Clone(params), pps1), others(key))
					// PPS 1 stays after a key frame that does not resend it.
					checkKeyframe(t, observed(t, tr, key), append(slices.Clone(params), pps1), others(key))
				}},
				{"parameter sets bounded", func(t *testing.T) {
					tr := newTrack(t, nil)
					params := paramSets(t, key)
					pps := params[len(params)-1]
					var sent [][]byte
					for id := range uint32(maxParamSets + 8) {
						sent = append(sent, WithPPSID(pps, cc.headerSize, id))
					}
					observed(t, tr, sent)
					// The oldest give way; the key frame's own PPS 0 comes back.
					want := append(slices.Clone(params[:len(params)-1]), sent[9:]...)
					checkKeyframe(t, observed(t, tr, key), append(want, pps), others(key))
				}},
				{"copies survive buffer reuse", func(t *testing.T) {
					tr := newTrack(t, nil)
					au := make([][]byte, len(key))
					for i, n := range key {
						au[i] = bytes.Clone(n)
					}
					got := observed(t, tr, au)
					for _, n := range au {
						clear(n) // as gortsplib reusing its buffers would
					}
					checkKeyframe(t, got, paramSets(t, key), others(key))
				}},
				{"depacketize", func(t *testing.T) {
					tr := newTrack(t, nil)
					// Small packets fragment every NAL unit but the PPS.
					pkts := cc.packetize(t, key, 20)
					// A session joined mid-unit starts with the last fragment.
					if _, _, err := tr.depacketize(pkts[len(pkts)-1], false); !errors.Is(err, errIncomplete) {
						t.Fatalf("depacketize(non-starting fragment) error = %v, want errIncomplete", err)
					}
					for i, pkt := range pkts {
						au, _, err := tr.depacketize(pkt, false) // a key frame is whole all the same
						if i < len(pkts)-1 {
							if !errors.Is(err, errIncomplete) {
								t.Fatalf("packet %d of %d: error = %v, want errIncomplete", i+1, len(pkts), err)
							}
							continue
						}
						if err != nil {
							t.Fatal(err)
						}
						if !slices.EqualFunc(au, key, bytes.Equal) {
							t.Errorf("depacketized types %v, want %v", types(au, cc.naluType), types(key, cc.naluType))
						}
					}
				}},
				{"truncated NAL unit", func(t *testing.T) {
					for _, tc := range []struct {
						size int
						ok   bool
					}{{cc.headerSize - 1, false}, {cc.headerSize, true}} {
						au := append(slices.Clone(key), key[len(key)-1][:tc.size])
						if err := checkNALUs(au, cc.nal.headerSize); (err == nil) != tc.ok {
							t.Errorf("access unit with a %d-byte NAL unit: error = %v, want ok %v", tc.size, err, tc.ok)
						}
					}
				}},
			} {
				t.Run(tc.name, tc.run)
			}
		})
	}
}

func types(au [][]byte, naluType func([]byte) byte) []byte {
	var out []byte
	for _, n := range au {
		out = append(out, naluType(n))
	}
	return out
}

// TestParamSetID rewrites the id of real parameter sets and reads it back,
// as mediacommon's full parsers read it.
func TestParamSetID(t *testing.T) {
	h264Clip := rtsptest.Clip(t, rtsptest.H264, "color=c=gray:s=320x240:r=25", 1)
	// Temporal sub-layers put sub-layer flags before the H265 SPS id.
	h265Clip := rtsptest.Clip(t, rtsptest.H265, "color=c=gray:s=320x240:r=25", 1,
		"-x265-params", "log-level=error:temporal-layers=1:bframes=4:b-pyramid=1")
	find := func(t *testing.T, au [][]byte, naluType func([]byte) byte, typ byte) []byte {
		t.Helper()
		i := slices.IndexFunc(au, func(n []byte) bool { return naluType(n) == typ })
		if i < 0 {
			t.Fatalf("no NAL unit of type %d", typ)
		}
		return au[i]
	}
	h264Type := func(n []byte) byte { return n[0] & 0x1f }
	h265Type := func(n []byte) byte { return (n[0] >> 1) & 0x3f }
	for _, tc := range []struct {
		name  string
		c     *nalCodec
		nalu  []byte
		idPos func(t *testing.T, rbsp []byte) int
		// parse reads the id with mediacommon.
		parse func(nalu []byte) (uint32, error)
	}{
		{"h264 SPS", &h264Codec, find(t, h264Clip.AccessUnits[0], h264Type, 7),
			func(*testing.T, []byte) int { return 24 },
			func(n []byte) (uint32, error) {
				var sps h264.SPS
				err := sps.Unmarshal(n)
				return sps.ID, err
			}},
		{"h264 PPS", &h264Codec, find(t, h264Clip.AccessUnits[0], h264Type, 8),
			func(*testing.T, []byte) int { return 0 }, nil},
		{"h265 SPS", &h265Codec, find(t, h265Clip.AccessUnits[0], h265Type, 33),
			func(t *testing.T, rbsp []byte) int {
				pos, err := h265SPSIDPos(rbsp)
				if err != nil {
					t.Fatal(err)
				}
				if maxSubLayersMinus1 := rbsp[0] >> 1 & 7; maxSubLayersMinus1 == 0 {
					t.Fatal("the clip has no temporal sub-layers")
				}
				return pos
			},
			func(n []byte) (uint32, error) {
				var sps h265.SPS
				err := sps.Unmarshal(n)
				return uint32(sps.ID), err
			}},
		{"h265 PPS", &h265Codec, find(t, h265Clip.AccessUnits[0], h265Type, 34),
			func(*testing.T, []byte) int { return 0 },
			func(n []byte) (uint32, error) {
				var pps h265.PPS
				err := pps.Unmarshal(n)
				return pps.ID, err
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pos := tc.idPos(t, h264.EmulationPreventionRemove(tc.nalu[tc.c.headerSize:]))
			for _, id := range []uint32{0, 3, 15} { // 15: the largest H265 SPS id
				nalu := withUE(tc.nalu, tc.c.headerSize, pos, id)
				if got, err := tc.c.paramSetID(nalu); got != id || err != nil {
					t.Errorf("paramSetID() of id %d = %d, %v", id, got, err)
				}
				if tc.parse == nil {
					continue
				}
				if got, err := tc.parse(nalu); got != id || err != nil {
					t.Errorf("mediacommon reads id %d as %d, %v", id, got, err)
				}
			}
			if _, err := tc.c.paramSetID(tc.nalu[:tc.c.headerSize]); err == nil {
				t.Error("paramSetID() of a NAL unit header alone: no error")
			}
		})
	}
}

// TestSPSSize observes crafted SPSs after a stream's valid one: those
// giving an impossible picture size are errors, and leave the size
// unknown, not the previous SPS's: the decoder's picture tells it.
func TestSPSSize(t *testing.T) {
	for _, tc := range []struct {
		name          string
		sps           []byte
		wantErr       bool
		width, height int
	}{
		{"valid", CraftH264SPS(1, 40, 30, 0, 0), false, 640, 480},
		{"valid cropping", CraftH264SPS(1, 40, 30, 4, 4), false, 632, 472},
		{"cropping beyond the width", CraftH264SPS(1, 20, 15, 200, 0), true, 0, 0},
		{"cropping beyond the height", CraftH264SPS(1, 20, 15, 0, 120), true, 0, 0},
		{"cropping the whole picture", CraftH264SPS(1, 20, 15, 160, 0), true, 0, 0},
		{"too wide", CraftH264SPS(1, 1100, 15, 0, 0), true, 0, 0},
		{"truncated", CraftH264SPS(1, 20, 15, 0, 0)[:4], true, 0, 0},
		// libavcodec decodes these: the size is before the VUI.
		{"VUI cut short", WithTruncatedVUI(CraftH264SPS(1, 40, 30, 0, 0)), false, 640, 480},
		{"VUI cut short, 8K", WithTruncatedVUI(CraftH264SPS(1, 480, 270, 0, 0)), false, 7680, 4320},
		{"VUI cut short, cropping", WithTruncatedVUI(CraftH264SPS(1, 40, 30, 4, 4)), false, 632, 472},
		{"VUI cut short, cropping beyond the width", WithTruncatedVUI(CraftH264SPS(1, 20, 15, 200, 0)), true, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := newNALTrack(&h264Codec, &format.H264{PayloadTyp: 96, PacketizationMode: 1,
				SPS: CraftH264SPS(0, 20, 15, 0, 0)})
			if err != nil {
				t.Fatal(err)
			}
			if w, h := tr.size(); w != 320 || h != 240 {
				t.Fatalf("size() of the SDP's SPS = %dx%d, want 320x240", w, h)
			}
			if err := tr.observe([][]byte{tc.sps}); (err != nil) != tc.wantErr {
				t.Errorf("observe() error = %v, want error %v", err, tc.wantErr)
			}
			if w, h := tr.size(); w != tc.width || h != tc.height {
				t.Errorf("size() = %dx%d, want %dx%d", w, h, tc.width, tc.height)
			}
		})
	}
}

// TestH265SPSSize reads the size of H265 SPSs that mediacommon cannot read
// whole but libavcodec decodes, and refuses impossible or truncated ones.
func TestH265SPSSize(t *testing.T) {
	for _, tc := range []struct {
		name          string
		sps           []byte
		wantErr       bool
		width, height int
	}{
		{"cut short after the size", craftH265SPS(1, 640, 480, nil, false), false, 640, 480},
		{"conformance window", craftH265SPS(1, 1920, 1088, []uint32{0, 0, 0, 4}, false), false, 1920, 1080},
		{"4:2:2 window", craftH265SPS(2, 640, 480, []uint32{1, 2, 3, 4}, false), false, 634, 473},
		{"4:4:4 window", craftH265SPS(3, 640, 480, []uint32{1, 2, 3, 4}, false), false, 637, 473},
		{"sub-layer profile", craftH265SPS(1, 7680, 4320, nil, true), false, 7680, 4320},
		{"window beyond the width", craftH265SPS(1, 640, 480, []uint32{0, 320, 0, 0}, false), true, 0, 0},
		{"window of 2^32-1", craftH265SPS(1, 640, 480, []uint32{0, 1<<32 - 1, 0, 0}, false), true, 0, 0},
		{"too high", craftH265SPS(1, 640, 16392, nil, false), true, 0, 0},
		{"chroma_format_idc 4", craftH265SPS(4, 640, 480, nil, false), true, 0, 0},
		{"truncated in the size", craftH265SPS(1, 640, 480, nil, false)[:17], true, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sps h265.SPS
			if err := sps.Unmarshal(tc.sps); err == nil {
				t.Fatal("mediacommon reads the crafted SPS whole")
			}
			tr, err := newNALTrack(&h265Codec, &format.H265{PayloadTyp: 96})
			if err != nil {
				t.Fatal(err)
			}
			if err := tr.observe([][]byte{tc.sps}); (err != nil) != tc.wantErr {
				t.Errorf("observe() error = %v, want error %v", err, tc.wantErr)
			}
			if w, h := tr.size(); w != tc.width || h != tc.height {
				t.Errorf("size() = %dx%d, want %dx%d", w, h, tc.width, tc.height)
			}
		})
	}
}

func TestRecoveryPoint(t *testing.T) {
	userData := func(size int) []byte { // user_data_unregistered, payload type 5
		msg := []byte{5}
		for n := size; ; n -= 255 {
			if n < 255 {
				msg = append(msg, byte(n))
				break
			}
			msg = append(msg, 0xff)
		}
		return append(msg, bytes.Repeat([]byte{0x11}, size)...)
	}
	recovery := []byte{6, 2, 0x09, 0xc4} // recovery_frame_cnt 0, exact match, no broken link
	h264SEI := func(msgs ...[]byte) []byte { return append(append([]byte{6}, slices.Concat(msgs...)...), 0x80) }
	h265SEI := func(msgs ...[]byte) []byte {
		return append(append([]byte{39 << 1, 1}, slices.Concat(msgs...)...), 0x80)
	}
	slice := []byte{0x41, 0x9a}
	for _, tc := range []struct {
		name string
		nal  *nalCodec
		au   [][]byte
		want bool
	}{
		{"h264 recovery point", &h264Codec, [][]byte{h264SEI(recovery), slice}, true},
		{"h264 after user data", &h264Codec, [][]byte{h264SEI(userData(16), recovery), slice}, true},
		{"h264 after user data of 300 bytes", &h264Codec, [][]byte{h264SEI(userData(300), recovery), slice}, true},
		{"h264 in a second SEI", &h264Codec, [][]byte{h264SEI(userData(16)), h264SEI(recovery), slice}, true},
		{"h264 user data only", &h264Codec, [][]byte{h264SEI(userData(300)), slice}, false},
		{"h264 truncated size", &h264Codec, [][]byte{{6, 5, 0xff}}, false},
		{"h264 payload beyond the end", &h264Codec, [][]byte{{6, 5, 40, 1, 2}}, false},
		{"h264 no SEI", &h264Codec, [][]byte{slice}, false},
		{"h265 prefix SEI", &h265Codec, [][]byte{h265SEI(userData(20), recovery), {1 << 1, 1, 0xaf}}, true},
		// A suffix SEI (type 40) follows the picture it belongs to.
		{"h265 suffix SEI", &h265Codec, [][]byte{{40 << 1, 1, 6, 2, 0x09, 0xc4, 0x80}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &nalTrack{c: tc.nal, sets: make([][]paramSet, len(tc.nal.paramSets))}
			if got := tr.recoveryPoint(tc.au); got != tc.want {
				t.Errorf("recoveryPoint = %v, want %v", got, tc.want)
			}
		})
	}
}
