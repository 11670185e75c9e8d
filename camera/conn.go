package camera

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// readBufferSize is the size of the reads from a camera's TCP connection.
// gortsplib reads through a 4 KiB buffer, a system call for every two or
// three RTP packets of a 4 Mb/s stream; a key frame arrives as a burst of
// a hundred packets, which larger reads take in a few calls.
const readBufferSize = 64 << 10

// readPace paces the reads that did not fill the buffer. A camera sends a
// frame's packets as they are encoded, 25 bursts a second, and reading each
// as it comes wakes the reader, and makes a read that finds nothing, for
// every one of them. Nothing here needs a packet sooner than 100 ms
// (timeouts are seconds), and the kernel's socket buffer holds what comes
// in the meantime; a stream faster than the buffer per pace fills every
// read, and is read without pause. Every camera's reader waits for the same
// ticks of the clock, so that they wake together and run one after the
// other, rather than each waking an idle CPU.
const readPace = 100 * time.Millisecond

// bufferedConn reads a connection through a larger buffer than the RTSP
// library's own, paced. The buffer is borrowed for a read and given back
// once the library took all of it, which it does at once: a hundred paced
// cameras share the few buffers in use at any one time.
//
// With a bypass, the connection of a plain RTSP session strips the RTP
// packets it reads for the bypass's handler (see rtpBypass). The part of a
// frame or message that a read ends in waits in hold for the next.
type bufferedConn struct {
	net.Conn
	paced   pacedReader
	buf     *[]byte // borrowed from readBuffers while it holds data
	data    []byte  // what buf holds that was not read yet
	pending error   // the error of the read that filled buf, for after data

	bypass *rtpBypass // nil: nothing is parsed
	mode   atomic.Uint32
	parser interleavedParser
	tail   []byte // in buf after data: the start of a frame or message
	hold   []byte // the tail, while no buffer is borrowed
}

// The modes of a connection with a bypass, decided by its first write, or
// its first read where that comes first.
const (
	modeUndecided = iota
	modeParse
	modePlain // TLS, or nothing written before the first read
)

// tlsHandshake starts a TLS record of the handshake, a client's first.
const tlsHandshake = 0x16

// readBuffers hold a whole interleaved frame, so that each RTP packet can
// be handed on whole from the buffer.
var readBuffers = sync.Pool{New: func() any {
	b := make([]byte, max(readBufferSize, maxInterleaved))
	return &b
}}

// unpaced, if not nil, tells when to read without pacing.
func newBufferedConn(c net.Conn, bypass *rtpBypass, unpaced func() bool) *bufferedConn {
	return &bufferedConn{Conn: c, paced: pacedReader{conn: c, pace: readPace, unpaced: unpaced}, bypass: bypass}
}

func (c *bufferedConn) Write(p []byte) (int, error) {
	if c.bypass != nil && len(p) > 0 && c.mode.Load() == modeUndecided {
		mode := uint32(modeParse)
		if p[0] == tlsHandshake {
			mode = modePlain
		}
		c.mode.CompareAndSwap(modeUndecided, mode)
	}
	return c.Conn.Write(p)
}

// parsing reports whether what the connection reads is parsed, once
// anything was written or read.
func (c *bufferedConn) parsing() bool {
	if c.bypass == nil {
		return false
	}
	c.mode.CompareAndSwap(modeUndecided, modePlain)
	return c.mode.Load() == modeParse
}

func (c *bufferedConn) Read(p []byte) (int, error) {
	for len(c.data) == 0 {
		if c.pending != nil {
			err := c.pending
			c.pending = nil
			return 0, err
		}
		if len(p) >= readBufferSize && len(c.hold) == 0 && (c.bypass == nil || c.mode.Load() == modePlain) {
			return c.paced.Read(p)
		}
		if err := c.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, c.data)
	c.data = c.data[n:]
	if len(c.data) == 0 {
		c.giveBack()
	}
	return n, nil
}

// fill reads into a borrowed buffer, after the start of a frame or message
// that the last read ended in, and parses what it can. It returns the
// read's error when nothing came of it.
func (c *bufferedConn) fill() error {
	c.buf = readBuffers.Get().(*[]byte)
	b := *c.buf
	held := copy(b, c.hold)
	c.hold = c.hold[:0]
	n, err := c.paced.Read(b[held:])
	b = b[:held+n]
	if !c.parsing() {
		c.data = b
	} else {
		h := c.bypass.handler.Load()
		w, r := c.parser.parse(b, h, &c.bypass.stripped)
		if r == 0 && len(b) == len(*c.buf) {
			// A message header larger than the buffer.
			c.parser.plain = true
			w, r = c.parser.parse(b, h, &c.bypass.stripped)
		}
		if err != nil { // the rest is never completed: as it is
			w += copy(b[w:], b[r:])
			r = len(b)
		}
		c.data, c.tail = b[:w], b[r:]
	}
	c.pending = err
	if len(c.data) == 0 {
		c.giveBack()
		c.pending = nil
		return err
	}
	return nil
}

// giveBack returns the buffer, keeping the tail of the last read in hold.
func (c *bufferedConn) giveBack() {
	c.hold = append(c.hold[:0], c.tail...)
	readBuffers.Put(c.buf)
	c.buf, c.data, c.tail = nil, nil, nil
}

// pacedReader waits for the next tick of readPace after a read that took
// less than half of what it could.
//
// A camera that decodes every frame is read as its frames come: decoding
// costs 80 times what receiving does, and so its latest picture is any
// frame, not the last of each tick, whose place in a GOP of a whole
// number of ticks would be fixed: a key frame's picture would never be
// the latest, and the frozen check never see one.
type pacedReader struct {
	conn    net.Conn
	pace    time.Duration // readPace; 0 in tests that read as fast as they can
	unpaced func() bool   // nil, or whether to read without pacing for now
	last    time.Time     // when the last read returned
	short   bool          // the last read was less than half full
}

func (r *pacedReader) Read(p []byte) (int, error) {
	if r.short && r.pace > 0 && (r.unpaced == nil || !r.unpaced()) {
		if wait := time.Until(r.last.Truncate(r.pace).Add(r.pace)); wait > 0 {
			time.Sleep(wait)
		}
	}
	n, err := r.conn.Read(p)
	r.last, r.short = time.Now(), n < len(p)/2
	return n, err
}
