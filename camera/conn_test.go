package camera

import (
	"bytes"
	"io"
	"net"
	"testing"
)

// countingConn serves data in reads as large as asked, counting them.
type countingConn struct {
	net.Conn
	data  *bytes.Reader
	reads int
}

func (c *countingConn) Read(p []byte) (int, error) {
	c.reads++
	return c.data.Read(p)
}

// TestBufferedConnReadsLarge checks that the RTSP library's 4 KiB reads of
// a burst, a key frame's 200 KiB say, cost a system call per 64 KiB.
func TestBufferedConnReadsLarge(t *testing.T) {
	burst := bytes.Repeat([]byte("0123456789abcdef"), 200<<10/16)
	raw := &countingConn{data: bytes.NewReader(burst)}
	conn := newBufferedConn(raw)
	var got bytes.Buffer
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got.Bytes(), burst) {
		t.Fatalf("read %d bytes, not the %d sent", got.Len(), len(burst))
	}
	if want := len(burst)/readBufferSize + 2; raw.reads > want {
		t.Errorf("%d reads from the connection for %d bytes, want at most %d", raw.reads, len(burst), want)
	}
}

// TestCameraConnectionsAreBuffered checks that the dialer gortsplib uses
// gives buffered connections.
func TestCameraConnectionsAreBuffered(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conn, err := (&redirects{}).dialContext(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, ok := conn.(*bufferedConn); !ok {
		t.Errorf("camera connection is a %T, want a *bufferedConn", conn)
	}
}
