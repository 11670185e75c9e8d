package camera

import (
	"encoding/binary"
	"testing"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/sdp"
	"github.com/pion/rtp"

	"github.com/camera-exporter/camera_exporter/video"
)

// The fuzz targets' inputs are plain bytes, which the fuzzer mutates best:
// a list of NAL units or packets is each one's 2-byte big-endian length,
// then its bytes. The seeds in testdata/fuzz are small encoded clips.

// splitUnits cuts b into its length-prefixed units; a truncated last one
// keeps what there is.
func splitUnits(b []byte) [][]byte {
	var out [][]byte
	for len(b) >= 2 {
		n := min(int(binary.BigEndian.Uint16(b)), len(b)-2)
		out = append(out, b[2:2+n])
		b = b[2+n:]
	}
	return out
}

// fuzzFormat is an SDP format of the codec that selector picks (H264,
// H265, MJPEG), with the parameter sets of params.
func fuzzFormat(selector uint8, params []byte) format.Format {
	ps := splitUnits(params)
	ps = append(ps, nil, nil, nil) // absent from the SDP
	switch selector % 3 {
	case 0:
		return &format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: ps[0], PPS: ps[1]}
	case 1:
		return &format.H265{PayloadTyp: 96, VPS: ps[0], SPS: ps[1], PPS: ps[2]}
	}
	return &format.MJPEG{}
}

func fuzzTrack(t *testing.T, f format.Format) track {
	_, _, tr, err := findTrack(&description.Session{Medias: []*description.Media{{
		Type: description.MediaTypeVideo, Formats: []format.Format{f},
	}}})
	if err != nil {
		t.Skip(err)
	}
	return tr
}

// handle does with an access unit what onPacket does, and checks that
// the track's state stays within its bounds.
func handle(t *testing.T, tr track, au [][]byte) {
	tr.observe(au) //nolint:errcheck // invalid parameter sets are what the fuzzer sends
	tr.picture(au)
	key := tr.keyframe(au)
	checkSize(t, tr)
	nt, ok := tr.(*nalTrack)
	if !ok {
		return
	}
	sets := 0
	for i, s := range nt.sets {
		if len(s) > maxParamSets {
			t.Fatalf("%d parameter sets of type %d, want at most %d", len(s), nt.c.paramSets[i], maxParamSets)
		}
		sets += len(s)
	}
	if len(key) > sets+len(au) {
		t.Fatalf("key frame of %d NAL units from %d parameter sets and %d NAL units", len(key), sets, len(au))
	}
}

// checkSize checks the size a track reports against its bounds.
func checkSize(t *testing.T, tr track) {
	w, h := tr.size()
	limit := maxPictureSide
	if tr.codec() == video.CodecMJPEG {
		limit = 0xffff // 16 bits in the JPEG
	}
	if w < 0 || h < 0 || w > limit || h > limit {
		t.Fatalf("size %dx%d", w, h)
	}
}

// FuzzNALTrack feeds arbitrary access units to an H264 (even codec) or
// H265 (odd) track whose SDP has the parameter sets params: first as one
// access unit, then each NAL unit on its own, so that parameter sets of
// many ids accumulate.
func FuzzNALTrack(f *testing.F) {
	f.Fuzz(func(t *testing.T, codec uint8, params, au []byte) {
		tr := fuzzTrack(t, fuzzFormat(codec%2, params))
		nt := tr.(*nalTrack)
		nalus := splitUnits(au)
		// The depacketizer rejects what is shorter than a header.
		if checkNALUs(nalus, nt.c.headerSize) != nil {
			return
		}
		for _, nalu := range nalus {
			nt.c.paramSetID(nalu) //nolint:errcheck // it must only not panic
		}
		handle(t, tr, nalus)
		for _, nalu := range nalus {
			handle(t, tr, [][]byte{nalu})
		}
	})
}

// FuzzJPEGSize reads the size of arbitrary JPEGs.
func FuzzJPEGSize(f *testing.F) {
	f.Add([]byte{0xff, 0xd8, 0xff, 0xc0, 0, 17, 8, 0, 240, 1, 64, 3})
	f.Fuzz(func(t *testing.T, img []byte) {
		w, h, err := jpegSize(img)
		if err == nil && (w < 0 || h < 0 || w > 0xffff || h > 0xffff) {
			t.Fatalf("size %dx%d", w, h)
		}
	})
}

// FuzzDepacketize sends RTP packets of arbitrary payloads to a track of
// the codec the selector picks (H264, H265, MJPEG), each packet a flags
// byte (bit 0: marker, bit 1: the next timestamp, bit 2: keep all slices
// whole) before its payload.
func FuzzDepacketize(f *testing.F) {
	f.Fuzz(func(t *testing.T, codec uint8, params, packets []byte) {
		tr := fuzzTrack(t, fuzzFormat(codec, params))
		var ts uint32
		for i, p := range splitUnits(packets) {
			if len(p) == 0 {
				continue
			}
			if p[0]&2 != 0 {
				ts += 3600
			}
			au, _, err := tr.depacketize(&rtp.Packet{
				Header:  rtp.Header{Version: 2, Marker: p[0]&1 != 0, PayloadType: 96, SequenceNumber: uint16(i), Timestamp: ts},
				Payload: p[1:],
			}, p[0]&4 != 0)
			if au != nil { // with an error too, damaged or not
				handle(t, tr, au)
			} else if err == nil {
				t.Fatal("neither an access unit nor an error")
			}
		}
	})
}

// FuzzFindTrack finds the track of an arbitrary SDP, as a session does
// after DESCRIBE, and reads what the SDP's parameter sets say.
func FuzzFindTrack(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		var sd sdp.SessionDescription
		if sd.Unmarshal(b) != nil {
			return
		}
		var desc description.Session
		if desc.Unmarshal(&sd) != nil {
			return
		}
		_, _, tr, err := findTrack(&desc)
		if err != nil {
			return
		}
		checkSize(t, tr)
	})
}
