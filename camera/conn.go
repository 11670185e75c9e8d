package camera

import (
	"bufio"
	"net"
)

// readBufferSize is the size of the reads from a camera's TCP connection.
// gortsplib reads through a 4 KiB buffer, a system call for every two or
// three RTP packets of a 4 Mb/s stream; a key frame arrives as a burst of
// a hundred packets, which larger reads take in a few calls.
const readBufferSize = 64 << 10

// bufferedConn reads a connection through a larger buffer than the RTSP
// library's own.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func newBufferedConn(c net.Conn) *bufferedConn {
	return &bufferedConn{Conn: c, r: bufio.NewReaderSize(c, readBufferSize)}
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
