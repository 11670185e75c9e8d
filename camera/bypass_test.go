package camera

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/conn"
	"github.com/pion/rtp"
)

// chunkConn reads the chunks it was given, one a read, then EOF, and
// records what was written.
type chunkConn struct {
	net.Conn
	chunks  [][]byte
	written bytes.Buffer
}

func (c *chunkConn) Read(p []byte) (int, error) {
	for len(c.chunks) > 0 && len(c.chunks[0]) == 0 {
		c.chunks = c.chunks[1:]
	}
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	return n, nil
}

func (c *chunkConn) Write(p []byte) (int, error) { return c.written.Write(p) }

// split cuts b at the given offsets, in increasing order.
func split(b []byte, at ...int) [][]byte {
	var chunks [][]byte
	last := 0
	for _, i := range at {
		chunks = append(chunks, b[last:i])
		last = i
	}
	return append(chunks, b[last:])
}

// received is what a bypass handler got: a packet's header and payload.
type received struct {
	header  rtp.Header
	payload []byte
}

// readBypassed reads chunks through a bypassed connection, as gortsplib
// does after its first request, with a handler of channel 0 when install.
func readBypassed(t testing.TB, chunks [][]byte, install bool) (out []byte, got []received, bypass *rtpBypass) {
	bypass = &rtpBypass{}
	if install {
		bypass.install(0, func(pkt *rtp.Packet) {
			h := pkt.Header
			h.CSRC = slices.Clone(h.CSRC)
			h.Extensions = nil
			got = append(got, received{header: h, payload: bytes.Clone(pkt.Payload)})
		})
	}
	raw := &chunkConn{chunks: chunks}
	conn := newBufferedConn(raw, bypass, nil)
	conn.paced.pace = 0
	if _, err := conn.Write([]byte("OPTIONS rtsp://camera/ RTSP/1.0\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096) // gortsplib's bufio.Reader
	var o bytes.Buffer
	for {
		n, err := conn.Read(buf)
		o.Write(buf[:n])
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return o.Bytes(), got, bypass
}

// frame is an interleaved frame.
func frame(channel byte, payload []byte) []byte {
	return append([]byte{'$', channel, byte(len(payload) >> 8), byte(len(payload))}, payload...)
}

// rtpCase is an RTP packet on the wire, and what the bypass makes of it.
type rtpCase struct {
	wire     []byte // the packet
	stripped []byte // its frame as gortsplib reads it
	want     received
}

func rtpPacket(t testing.TB, pkt rtp.Packet) rtpCase {
	wire, err := pkt.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var want rtp.Packet
	if err := want.Unmarshal(wire); err != nil {
		t.Fatal(err)
	}
	want.Extensions = nil
	fixed := slices.Clone(wire[:12])
	fixed[0] &= 0xc0
	return rtpCase{wire: wire, stripped: frame(0, fixed), want: received{header: want.Header, payload: want.Payload}}
}

// bypassStream is a camera's side of a session, what the bypass should
// hand gortsplib of it, and the packets its handler should get.
// With big, it ends with a packet of the largest size.
func bypassStream(t testing.TB, big bool) (in, out []byte, packets []received) {
	payload := func(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }
	var plainHeader rtp.Header
	plainHeader.Version, plainHeader.PayloadType, plainHeader.SequenceNumber = 2, 96, 1000
	plainHeader.Timestamp, plainHeader.SSRC, plainHeader.Marker = 90000, 0x12345678, true
	withCSRC := plainHeader
	withCSRC.SequenceNumber, withCSRC.CSRC = 1001, []uint32{1, 2, 3}
	withExt := plainHeader
	withExt.SequenceNumber = 1002
	if err := withExt.SetExtension(1, []byte{0xaa, 0xbb}); err != nil {
		t.Fatal(err)
	}
	withGeneric := plainHeader
	withGeneric.SequenceNumber, withGeneric.Extension, withGeneric.ExtensionProfile = 1003, true, 0xabac
	withGeneric.Extensions = []rtp.Extension{}
	if err := withGeneric.SetExtension(0, []byte{1, 2, 3, 4, 5, 6, 7, 8}); err != nil {
		t.Fatal(err)
	}
	padded := plainHeader
	padded.SequenceNumber, padded.Padding, padded.PaddingSize = 1004, true, 7
	all := plainHeader
	all.SequenceNumber, all.CSRC, all.Padding, all.PaddingSize = 1005, []uint32{9}, true, 3
	if err := all.SetExtension(2, []byte{0xcc}); err != nil {
		t.Fatal(err)
	}
	cases := []rtpCase{
		rtpPacket(t, rtp.Packet{Header: plainHeader, Payload: payload(1400, 0x65)}),
		rtpPacket(t, rtp.Packet{Header: withCSRC, Payload: payload(10, 0x41)}),
		rtpPacket(t, rtp.Packet{Header: withExt, Payload: payload(300, 0x7c)}),
		rtpPacket(t, rtp.Packet{Header: withGeneric, Payload: payload(3, 0x01)}),
		rtpPacket(t, rtp.Packet{Header: padded, Payload: payload(50, 0x06)}),
		rtpPacket(t, rtp.Packet{Header: all, Payload: payload(1, 0x09)}),
		rtpPacket(t, rtp.Packet{Header: plainHeader}), // no payload at all
	}
	if big {
		cases = append(cases, rtpPacket(t, rtp.Packet{Header: plainHeader, Payload: payload(0xffff-12, 0x5c)}))
	}
	play := "RTSP/1.0 200 OK\r\nCSeq: 4\r\nSession: 12345678\r\nRTP-Info: url=rtsp://camera/track1;seq=1000\r\n\r\n"
	sdp := "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=camera\r\nm=video 0 RTP/AVP 96\r\n"
	describe := fmt.Sprintf("RTSP/1.0 200 OK\r\nCSeq: 2\r\ncontent-LENGTH:   %d\r\nContent-Type: application/sdp\r\n\r\n%s", len(sdp), sdp)
	getParameter := "GET_PARAMETER rtsp://camera/ RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 5\r\n\r\n$\x00\x00\x10\n"
	twoLengths := "RTSP/1.0 200 OK\r\nCSeq: 5\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n"
	rtcp := frame(1, []byte{0x81, 0xc9, 0, 7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28})
	other := frame(2, cases[0].wire) // another media's RTP: not bypassed
	malformed := frame(0, []byte{0x90, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xbe, 0xde, 0, 9})

	add := func(wire, stripped []byte) {
		in = append(in, wire...)
		out = append(out, stripped...)
	}
	add([]byte(describe), []byte(describe))
	add([]byte(play), []byte(play))
	for i, c := range cases {
		add(frame(0, c.wire), c.stripped)
		packets = append(packets, c.want)
		switch i {
		case 1:
			add(rtcp, rtcp)
		case 2:
			add([]byte(getParameter), []byte(getParameter))
		case 3:
			add(other, other)
		case 4:
			add(malformed, malformed)
		case 5:
			add([]byte("\r\n"), []byte("\r\n")) // stray bytes, which gortsplib skips
		case 6:
			add([]byte(twoLengths), []byte(twoLengths))
		}
	}
	return in, out, packets
}

func checkBypassed(t *testing.T, what string, chunks [][]byte, wantOut []byte, wantPackets []received) {
	t.Helper()
	out, got, bypass := readBypassed(t, chunks, true)
	if !bytes.Equal(out, wantOut) {
		i := 0
		for i < min(len(out), len(wantOut)) && out[i] == wantOut[i] {
			i++
		}
		t.Fatalf("%s: gortsplib reads %d bytes, want %d; they differ from byte %d: %q, want %q", what, len(out), len(wantOut), i,
			out[i:min(len(out), i+40)], wantOut[i:min(len(wantOut), i+40)])
	}
	if len(got) != len(wantPackets) {
		t.Fatalf("%s: the handler got %d packets, want %d", what, len(got), len(wantPackets))
	}
	for i := range got {
		g, w := got[i], wantPackets[i]
		if !bytes.Equal(g.payload, w.payload) || fmt.Sprint(g.header) != fmt.Sprint(w.header) {
			t.Fatalf("%s: packet %d is %v with %d bytes of payload, want %v with %d", what, i, g.header, len(g.payload), w.header, len(w.payload))
		}
	}
	if n := bypass.stripped.Load(); n != uint64(len(wantPackets)) {
		t.Fatalf("%s: %d packets stripped, want %d", what, n, len(wantPackets))
	}
}

// TestBypassStripsRTP reads a session's messages and frames through the
// bypass, in one read, in two at every byte, and a byte a read: gortsplib
// reads the same messages and frames, the RTP packets of the bypassed
// channel without payload, and the handler gets those packets, in order.
func TestBypassStripsRTP(t *testing.T) {
	in, out, packets := bypassStream(t, true)
	checkBypassed(t, "one read", [][]byte{in}, out, packets)
	var bytewise [][]byte
	for i := range in {
		bytewise = append(bytewise, in[i:i+1])
	}
	checkBypassed(t, "a byte a read", bytewise, out, packets)
	for _, i := range []int{1, len(in) - 65539, len(in) - 65538, len(in) - 100, len(in) - 1} {
		checkBypassed(t, fmt.Sprintf("split at %d", i), split(in, i), out, packets)
	}
	in, out, packets = bypassStream(t, false)
	step := 1
	if testing.Short() {
		step = 97
	}
	for i := 1; i < len(in); i += step {
		checkBypassed(t, fmt.Sprintf("split at %d", i), split(in, i), out, packets)
		if i+3 < len(in) {
			checkBypassed(t, fmt.Sprintf("split at %d and %d", i, i+3), split(in, i, i+3), out, packets)
		}
	}
	// Without a handler nothing changes.
	if got, _, _ := readBypassed(t, [][]byte{in}, false); !bytes.Equal(got, in) {
		t.Error("without a handler, the bypass changed what gortsplib reads")
	}
}

// TestBypassPassesOn checks what the bypass does not parse: a TLS session,
// and what it cannot follow, which it passes on as it is, for good.
func TestBypassPassesOn(t *testing.T) {
	in, _, _ := bypassStream(t, true)
	bypass := &rtpBypass{}
	bypass.install(0, func(*rtp.Packet) { t.Error("a TLS session's packet handed on") })
	raw := &chunkConn{chunks: [][]byte{in}}
	conn := newBufferedConn(raw, bypass, nil)
	conn.paced.pace = 0
	if _, err := conn.Write([]byte{tlsHandshake, 3, 1, 0, 5}); err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(conn); err != nil || !bytes.Equal(got, in) {
		t.Errorf("a TLS session's bytes changed (%v)", err)
	}

	rtpFrame := frame(0, []byte{0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0x65, 1, 2})
	for _, bad := range []string{
		"RTSP/1.0 200 OK\r\nContent-Length: 1x\r\n\r\n",
		"RTSP/1.0 200 OK\r\nContent-Length: 200000\r\n\r\n",
		"RTSP/1.0 200 OK\rX\r\n\r\n",
		"RTSP/1.0 200 OK\r\nCSeq: 1\r\r\n",
		"RTSP/1.0 200 OK\r\n\rX",
	} {
		stream := append([]byte(bad), rtpFrame...)
		if got, pkts, _ := readBypassed(t, [][]byte{stream}, true); !bytes.Equal(got, stream) || len(pkts) != 0 {
			t.Errorf("after %q: %q read, %d packets handed on; want all passed on", bad, got, len(pkts))
		}
	}
	// A header larger than the buffer.
	huge := append([]byte("RTSP/1.0 200 OK\r\nX: "), bytes.Repeat([]byte("x"), 70<<10)...)
	huge = append(append(huge, "\r\n\r\n"...), rtpFrame...)
	if got, pkts, _ := readBypassed(t, [][]byte{huge}, true); !bytes.Equal(got, huge) || len(pkts) != 0 {
		t.Errorf("a huge header: %d bytes read, %d packets handed on; want all passed on", len(got), len(pkts))
	}
}

// FuzzBypass feeds arbitrary bytes in arbitrary reads: the bypass never
// panics, passes everything on as it is without a handler, and changes
// nothing where it stripped no packet.
func FuzzBypass(f *testing.F) {
	in, _, _ := bypassStream(f, false)
	f.Add(in[:2000], []byte{7, 200, 3})
	f.Add(frame(0, []byte{0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1}), []byte{1})
	f.Add([]byte("RTSP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n$\x00$\x00\x00\x0c\x80\x60\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01"), []byte{5, 5})
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		var at []int
		last := 0
		for _, c := range cuts {
			if last += int(c); last > len(data) {
				break
			}
			at = append(at, last)
		}
		if got, _, _ := readBypassed(t, split(data, at...), false); !bytes.Equal(got, data) {
			t.Fatalf("without a handler, %q read as %q", data, got)
		}
		got, pkts, bypass := readBypassed(t, split(data, at...), true)
		if n := bypass.stripped.Load(); n != uint64(len(pkts)) {
			t.Fatalf("%d packets stripped, %d handed on", n, len(pkts))
		}
		if len(pkts) == 0 && !bytes.Equal(got, data) {
			t.Fatalf("no packet stripped, yet %q read as %q", data, got)
		}
		if len(got) > len(data) {
			t.Fatalf("%d bytes read of %d", len(got), len(data))
		}
	})
}

// TestBypassAllocs checks that stripping RTP packets and handing them on
// allocates nothing.
func TestBypassAllocs(t *testing.T) {
	var stream []byte
	for seq := range 40 {
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: uint16(seq), SSRC: 1}, Payload: bytes.Repeat([]byte{0x65}, 1400)}
		if seq%3 == 0 {
			pkt.CSRC = []uint32{1, 2}
		}
		wire, err := pkt.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		stream = append(stream, frame(0, wire)...)
	}
	buf := make([]byte, len(stream))
	var sum int
	h := &bypassHandler{channel: 0, handle: func(pkt *rtp.Packet) { sum += len(pkt.Payload) + int(pkt.SequenceNumber) }}
	var p interleavedParser
	var stripped atomic.Uint64
	allocs := testing.AllocsPerRun(100, func() {
		copy(buf, stream)
		if w, r := p.parse(buf, h, &stripped); r != len(buf) || w != 40*16 {
			t.Fatalf("parsed %d bytes to %d, want %d to %d", r, w, len(buf), 40*16)
		}
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per buffer of 40 packets, want 0", allocs)
	}
}

// TestBypassReadByGortsplib checks that gortsplib's reader finds the same
// messages and frames in what the bypass hands it as in what the camera
// sent, the RTP packets of the bypassed channel decoded to their fixed
// headers without payload.
func TestBypassReadByGortsplib(t *testing.T) {
	in, out, packets := bypassStream(t, true)
	read := func(b []byte) []any {
		var items []any
		c := conn.NewConn(struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(b), io.Discard})
		for {
			item, err := c.Read()
			if errors.Is(err, io.EOF) {
				return items
			}
			if err != nil {
				t.Fatal(err)
			}
			if fr, ok := item.(*base.InterleavedFrame); ok {
				item = base.InterleavedFrame{Channel: fr.Channel, Payload: fr.Payload}
			}
			items = append(items, item)
		}
	}
	sent, got := read(in), read(out)
	if len(got) != len(sent) {
		t.Fatalf("gortsplib reads %d messages and frames, want %d", len(got), len(sent))
	}
	n := 0
	for i := range got {
		fr, ok := got[i].(base.InterleavedFrame)
		if !ok || fr.Channel != 0 {
			if fmt.Sprint(got[i]) != fmt.Sprint(sent[i]) {
				t.Errorf("gortsplib reads %v, want %v", got[i], sent[i])
			}
			continue
		}
		var pkt, orig rtp.Packet
		if err := orig.Unmarshal(sent[i].(base.InterleavedFrame).Payload); err != nil {
			if !bytes.Equal(fr.Payload, sent[i].(base.InterleavedFrame).Payload) {
				t.Errorf("a malformed packet changed")
			}
			continue
		}
		if err := pkt.Unmarshal(fr.Payload); err != nil {
			t.Fatal(err)
		}
		h, w := pkt.Header, packets[n].header
		n++
		if h.SequenceNumber != w.SequenceNumber || h.Timestamp != w.Timestamp || h.SSRC != w.SSRC ||
			h.PayloadType != w.PayloadType || h.Marker != w.Marker || h.Padding || h.Extension || len(h.CSRC) != 0 || len(pkt.Payload) != 0 {
			t.Errorf("gortsplib decodes %v with %d bytes of payload, want the fixed header of %v", h, len(pkt.Payload), w)
		}
	}
	if n != len(packets) {
		t.Errorf("gortsplib decodes %d stripped packets, want %d", n, len(packets))
	}
}
