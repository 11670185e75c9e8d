package rtsptest

import (
	"encoding/binary"
	"net"
	"slices"
	"sync/atomic"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/pion/rtp"
)

// How far an encoder restart moves a clip's RTP numbering, per restart.
const (
	restartSSRCXor = 0x5a5a5a5a
	restartSeqJump = 20000
	restartTSJump  = 1 << 30
)

// faults are the ways a clip misbehaves, as cameras in the field do. Tests
// switch them on while the clip plays.
type faults struct {
	duplicate atomic.Bool
	drop      atomic.Int64  // packets still to drop
	restarts  atomic.Uint32 // encoder restarts so far
}

// Duplicate makes the named clip send every RTP packet twice from now on,
// as some cameras do over TCP.
func (s *Server) Duplicate(name string) {
	s.withServed(name, func(sv *served) { sv.faults.duplicate.Store(true) })
}

// Drop makes the named clip skip its next n RTP packets, as a lossy
// network would. Their sequence numbers are used up all the same.
func (s *Server) Drop(name string, n int) {
	s.withServed(name, func(sv *served) { sv.faults.drop.Add(int64(n)) })
}

// RestartEncoder makes the named clip go on as a camera whose encoder
// restarted mid-session: its RTP packets carry another SSRC, and their
// sequence numbers and timestamps jump. Only TCP readers see the new SSRC
// (gortsplib stamps its own on every packet; a rewrite of the connection's
// bytes replaces it).
func (s *Server) RestartEncoder(name string) {
	s.withServed(name, func(sv *served) { sv.faults.restarts.Add(1) })
}

func (s *Server) withServed(name string, f func(*served)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sv, ok := s.streams[name]; ok {
		f(sv)
	}
}

// write sends one RTP packet of the clip, with its faults.
func (f *faults) write(stream *gortsplib.ServerStream, medi *description.Media, pkt *rtp.Packet) {
	for n := f.drop.Load(); n > 0; n = f.drop.Load() {
		if f.drop.CompareAndSwap(n, n-1) {
			return
		}
	}
	r := f.restarts.Load()
	pkt.SequenceNumber += uint16(r * restartSeqJump)
	pkt.Timestamp += r * restartTSJump
	stream.WritePacketRTP(medi, pkt) //nolint:errcheck // readers come and go.
	if f.duplicate.Load() {
		stream.WritePacketRTP(medi, pkt) //nolint:errcheck // readers come and go.
	}
}

// listen wraps the server's connections so that RestartEncoder can change
// the SSRC of the RTP packets they carry.
func (s *Server) listen(network, address string) (net.Listener, error) {
	l, err := net.Listen(network, address)
	if err != nil {
		return nil, err
	}
	return faultListener{l}, nil
}

type faultListener struct{ net.Listener }

func (l faultListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &faultConn{Conn: c}, nil
}

// faultConn is a connection to a reader of a clip, known once it plays.
type faultConn struct {
	net.Conn
	clip atomic.Pointer[served]
}

// bind tells the reader's connection which clip it plays.
func (s *Server) bind(sc *gortsplib.ServerConn, path string) {
	fc, ok := sc.NetConn().(*faultConn)
	if !ok {
		return
	}
	s.withServed(trimPath(path), func(sv *served) { fc.clip.Store(sv) })
}

// Write relies on gortsplib writing each interleaved frame with one Write:
// '$', an even channel for RTP, the length, then the packet, whose SSRC is
// at bytes 8-11.
func (c *faultConn) Write(b []byte) (int, error) {
	if sv := c.clip.Load(); sv != nil {
		if r := sv.faults.restarts.Load(); r != 0 && len(b) >= 4+12 && b[0] == '$' && b[1]%2 == 0 {
			b = slices.Clone(b)
			ssrc := b[4+8 : 4+12]
			binary.BigEndian.PutUint32(ssrc, binary.BigEndian.Uint32(ssrc)^(r*restartSSRCXor))
		}
	}
	return c.Conn.Write(b)
}
