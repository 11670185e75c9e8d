package camera

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sync/atomic"

	"github.com/pion/rtp"
)

// rtpBypass hands a session's RTP packets to the stream as its connection
// reads them, before gortsplib sees them: gortsplib v4 allocates every
// interleaved frame it reads, and its garbage collection, a third of the
// cost of receiving a camera. gortsplib gets each packet's fixed header
// only, so that its read timeout and receiver reports still see every
// packet, for a dozen bytes.
//
// A session's dialer gives its connections the bypass only for a plain
// rtsp URL; a connection whose first write is a TLS handshake (a redirect
// to rtsps) never parses what it reads. The session installs the handler
// once SETUP told the channel, before PLAY.
type rtpBypass struct {
	handler atomic.Pointer[bypassHandler]
	// stripped counts the packets gortsplib got the header of only: once
	// there was one, the packets without payload that gortsplib delivers
	// are those.
	stripped atomic.Uint64
}

type bypassHandler struct {
	channel byte // the interleaved channel of the session's RTP
	// handle gets each RTP packet of channel that gortsplib would decode,
	// on the goroutine reading the connection. The packet and its payload
	// are valid during the call only.
	handle func(*rtp.Packet)
}

// install has the session's connection hand the packets of an interleaved
// channel to handle from now on.
func (b *rtpBypass) install(channel byte, handle func(*rtp.Packet)) {
	b.handler.Store(&bypassHandler{channel: channel, handle: handle})
}

// used reports whether gortsplib got packets stripped of their payloads.
func (b *rtpBypass) used() bool { return b.stripped.Load() > 0 }

// Limits of what gortsplib v4.16.2 reads of an RTSP message.
const (
	interleavedHeader = 4 // '$', channel, 16-bit length (RFC 2326 10.12)
	maxInterleaved    = interleavedHeader + 0xffff
	rtpHeader         = 12 // without CSRC or extension
	maxContentLength  = 128 << 10
)

var errUnparsable = errors.New("not an RTSP message gortsplib reads")

// interleavedParser follows the messages and interleaved frames a
// connection reads, as gortsplib's reader will, and strips the RTP packets
// of the bypassed channel to their fixed headers, P, X and CC bits cleared:
// gortsplib reads no CSRC, extension or padding of them, which it would
// allocate or, for some one-byte extensions without payload, refuse. What
// it cannot follow, it passes on as it is, for good.
type interleavedParser struct {
	plain bool // passing everything on, for good
	skip  int  // bytes of the current message or frame to pass on as they are
	pkt   rtp.Packet
}

// parse processes b, what the connection read after the rest of the last
// read, in place and in one pass: what gortsplib is to read is left in
// b[:w], and b[r:] is the start of a frame or message to complete with the
// next read. Only headers are moved, by less than the payloads stripped
// before them.
func (p *interleavedParser) parse(b []byte, h *bypassHandler, stripped *atomic.Uint64) (w, r int) {
	for r < len(b) && !p.plain {
		if p.skip > 0 {
			n := min(p.skip, len(b)-r)
			w += copy(b[w:], b[r:r+n])
			r += n
			p.skip -= n
			continue
		}
		rest := b[r:]
		if rest[0] == '$' {
			if len(rest) < interleavedHeader {
				return w, r
			}
			size := interleavedHeader + int(binary.BigEndian.Uint16(rest[2:]))
			if h == nil || rest[1] != h.channel {
				p.skip = size
				continue
			}
			if len(rest) < size {
				return w, r
			}
			w += p.strip(b[w:], rest[:size], h, stripped)
			r += size
			continue
		}
		if len(rest) < 2 {
			return w, r
		}
		if !rtspStart(rest) {
			p.skip = 1 // gortsplib skips a byte that starts nothing it knows
			continue
		}
		size, err := messageSize(rest)
		if err != nil {
			p.plain = true
			break
		}
		if size == 0 {
			return w, r
		}
		p.skip = size
	}
	if p.plain {
		w += copy(b[w:], b[r:])
		r = len(b)
	}
	return w, r
}

// strip hands the RTP packet of frame to h and writes the frame gortsplib
// reads to dst, which ends before the packet's payload: its fixed header
// only, or the frame as it is where the packet is malformed, as gortsplib
// will find it.
func (p *interleavedParser) strip(dst, frame []byte, h *bypassHandler, stripped *atomic.Uint64) int {
	// As a packet of its own, as gortsplib's; the slices are reused.
	p.pkt = rtp.Packet{Header: rtp.Header{CSRC: p.pkt.CSRC[:0], Extensions: p.pkt.Extensions[:0]}}
	if err := p.pkt.Unmarshal(frame[interleavedHeader:]); err != nil {
		return copy(dst, frame)
	}
	h.handle(&p.pkt)
	p.pkt.Payload = nil
	stripped.Add(1)
	n := copy(dst, frame[:interleavedHeader+rtpHeader])
	dst[2], dst[3] = 0, rtpHeader
	dst[interleavedHeader] &= 0xc0 // the version; no padding, extension or CSRC
	return n
}

// rtspStart reports whether b starts a message gortsplib reads: a response
// or a request of a method it knows the first two letters of.
func rtspStart(b []byte) bool {
	switch string(b[:2]) {
	case "RT", "AN", "DE", "GE", "OP", "PA", "PL", "RE", "SE", "TE":
		return true
	}
	return false
}

// contentLength is the header whose value is the size of a message's body.
var contentLength = []byte("Content-Length")

// messageSize returns the size of the RTSP message at the start of b, as
// gortsplib v4.16.2 reads it: a start line of two words and the rest, ended
// by CR LF, header lines "key: value" each ended by CR LF, where the key
// runs from the line's first byte to the next colon, an empty line, and
// the body of the one Content-Length header. 0 means b holds part of it.
func messageSize(b []byte) (int, error) {
	i := 0
	for range 2 {
		j := bytes.IndexByte(b[i:], ' ')
		if j < 0 {
			return 0, nil
		}
		i += j + 1
	}
	i, err := lineEnd(b, i)
	if i <= 0 {
		return 0, err
	}
	lengths, length, lengthOK := 0, 0, false
	for {
		if i >= len(b) {
			return 0, nil
		}
		if b[i] == '\r' {
			if i+1 >= len(b) {
				return 0, nil
			}
			if b[i+1] != '\n' {
				return 0, errUnparsable
			}
			i += 2
			break
		}
		j := bytes.IndexByte(b[i+1:], ':')
		if j < 0 {
			return 0, nil
		}
		key := b[i : i+1+j]
		i += 1 + j + 1
		for i < len(b) && b[i] == ' ' {
			i++
		}
		start := i
		if i, err = lineEnd(b, i); i <= 0 {
			return 0, err
		}
		if bytes.EqualFold(key, contentLength) {
			lengths++
			length, lengthOK = parseLength(b[start : i-2])
		}
	}
	if lengths == 1 {
		if !lengthOK {
			return 0, errUnparsable
		}
		i += length
	}
	return i, nil
}

// lineEnd returns where the line from b[i:] ends, after the first CR and the
// LF that must follow; 0 when b ends before.
func lineEnd(b []byte, i int) (int, error) {
	j := bytes.IndexByte(b[i:], '\r')
	if j < 0 || i+j+1 >= len(b) {
		return 0, nil
	}
	if b[i+j+1] != '\n' {
		return 0, errUnparsable
	}
	return i + j + 2, nil
}

// parseLength parses a Content-Length as gortsplib does (decimal digits
// only) and accepts it up to gortsplib's limit.
func parseLength(b []byte) (int, bool) {
	if len(b) == 0 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n = 10*n + int(c-'0'); n > maxContentLength {
			return 0, false
		}
	}
	return n, true
}
