package camera

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// countingConn counts reads, of data, as large as asked, or else of Conn.
type countingConn struct {
	net.Conn
	data  *bytes.Reader
	reads int
}

func (c *countingConn) Read(p []byte) (int, error) {
	c.reads++
	if c.data == nil {
		return c.Conn.Read(p)
	}
	return c.data.Read(p)
}

// TestBufferedConnReadsLarge checks that the RTSP library's 4 KiB reads of
// a burst, a key frame's 200 KiB say, cost a system call per 64 KiB, and
// that the buffer is given back once read.
func TestBufferedConnReadsLarge(t *testing.T) {
	burst := bytes.Repeat([]byte("0123456789abcdef"), 200<<10/16)
	raw := &countingConn{data: bytes.NewReader(burst)}
	conn := newBufferedConn(raw, nil, nil)
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
	if conn.buf != nil {
		t.Error("the read buffer is kept after its data was read: cameras would not share them")
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

// TestBufferedConnPacesReads checks that a stream of small writes, a 4 Mb/s
// camera's packets as they are encoded, is read in few large reads: a read
// per write would be 200 in the second the writes take.
func TestBufferedConnPacesReads(t *testing.T) {
	client, server := tcpPair(t)
	raw := &countingConn{Conn: client}
	conn := newBufferedConn(raw, nil, nil)
	packet := bytes.Repeat([]byte{0xab}, 2500) // 200 a second: 4 Mb/s
	go func() {
		defer server.Close()
		for range 200 {
			if _, err := server.Write(packet); err != nil {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	n, err := io.Copy(io.Discard, conn)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(200 * len(packet)); n != want {
		t.Fatalf("read %d bytes, want %d", n, want)
	}
	// About 10 paced reads a second, and the one that reads EOF; a slow
	// machine reads less often, never more.
	if raw.reads > 30 {
		t.Errorf("%d reads from the connection for 200 writes, want at most 30", raw.reads)
	}
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// TestBufferedConnUnpaced checks that a stream that decodes every frame is
// read as its data comes.
func TestBufferedConnUnpaced(t *testing.T) {
	client, server := tcpPair(t)
	raw := &countingConn{Conn: client}
	conn := newBufferedConn(raw, nil, func() bool { return true })
	go func() {
		defer server.Close()
		for range 50 {
			if _, err := server.Write([]byte("packet")); err != nil {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	if _, err := io.Copy(io.Discard, conn); err != nil {
		t.Fatal(err)
	}
	// Paced, the quarter second of writes would take about 3 reads.
	if raw.reads < 20 {
		t.Errorf("%d reads for 50 writes 5 ms apart, want them read as they come", raw.reads)
	}
}
