package camera

import (
	"net"
	"sync"
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
type bufferedConn struct {
	net.Conn
	paced   pacedReader
	buf     *[]byte // borrowed from readBuffers while it holds data
	data    []byte  // what buf holds that was not read yet
	pending error   // the error of the read that filled buf, for after data
}

var readBuffers = sync.Pool{New: func() any {
	b := make([]byte, readBufferSize)
	return &b
}}

func newBufferedConn(c net.Conn) *bufferedConn {
	return &bufferedConn{Conn: c, paced: pacedReader{conn: c}}
}

func (c *bufferedConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		if c.pending != nil {
			err := c.pending
			c.pending = nil
			return 0, err
		}
		if len(p) >= readBufferSize {
			return c.paced.Read(p)
		}
		c.buf = readBuffers.Get().(*[]byte)
		n, err := c.paced.Read(*c.buf)
		c.data, c.pending = (*c.buf)[:n], err
		if n == 0 {
			c.giveBack()
			c.pending = nil
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

func (c *bufferedConn) giveBack() {
	readBuffers.Put(c.buf)
	c.buf, c.data = nil, nil
}

// pacedReader waits for the next tick of readPace after a read that took
// less than half of what it could.
type pacedReader struct {
	conn  net.Conn
	last  time.Time // when the last read returned
	short bool      // the last read was less than half full
}

func (r *pacedReader) Read(p []byte) (int, error) {
	if r.short {
		if wait := time.Until(r.last.Truncate(readPace).Add(readPace)); wait > 0 {
			time.Sleep(wait)
		}
	}
	n, err := r.conn.Read(p)
	r.last, r.short = time.Now(), n < len(p)/2
	return n, err
}
