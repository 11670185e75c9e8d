package camera

import (
	"bufio"
	"net"
	"time"
)

// readBufferSize is the size of the reads from a camera's TCP connection.
// gortsplib reads through a 4 KiB buffer, a system call for every two or
// three RTP packets of a 4 Mb/s stream; a key frame arrives as a burst of
// a hundred packets, which larger reads take in a few calls.
const readBufferSize = 64 << 10

// readPace is the least time between two reads that did not fill the
// buffer. A camera sends a frame's packets as they are encoded, 25 bursts a
// second, and reading each as it comes wakes the reader, and makes a read
// that finds nothing, for every one of them. Nothing here needs a packet
// sooner than 100 ms (timeouts are seconds), and the kernel's socket buffer
// holds what comes in the meantime; a stream faster than the buffer per
// pace fills every read, and is read without pause.
const readPace = 100 * time.Millisecond

// bufferedConn reads a connection through a larger buffer than the RTSP
// library's own, paced.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func newBufferedConn(c net.Conn) *bufferedConn {
	return &bufferedConn{Conn: c, r: bufio.NewReaderSize(&pacedReader{conn: c}, readBufferSize)}
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// pacedReader waits out readPace after a read that took less than half of
// what it could.
type pacedReader struct {
	conn  net.Conn
	last  time.Time // when the last read returned
	short bool      // the last read was less than half full
}

func (r *pacedReader) Read(p []byte) (int, error) {
	if r.short {
		if wait := readPace - time.Since(r.last); wait > 0 {
			time.Sleep(wait)
		}
	}
	n, err := r.conn.Read(p)
	r.last, r.short = time.Now(), n < len(p)/2
	return n, err
}
