package rtsptest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/pion/rtp"
)

// Server is an RTSP server that plays each Media in a loop, in real time, on
// its own path (rtsp://Addr/<name>).
type Server struct {
	// Addr is the host:port the server listens on.
	Addr string

	user, pass string
	server     *gortsplib.Server
	stop       chan struct{}
	wg         sync.WaitGroup

	mu        sync.Mutex
	streams   map[string]*served
	teardowns map[string]int                      // by clip name; kept after Remove and Close
	playing   map[*gortsplib.ServerSession]string // the clip each session plays
}

// served is one clip's stream and its playback state.
type served struct {
	stream *gortsplib.ServerStream
	paused atomic.Bool
	sent   atomic.Uint64 // access units sent
	stop   chan struct{} // closed by Remove
	faults faults
}

// Options configure a Server.
type Options struct {
	// Addr to listen on; "127.0.0.1:0" picks a free port.
	Addr string
	// User and Pass, when set, are required from readers (digest or basic).
	User, Pass string
	// UDPPorts, when set, enables UDP transport on these RTP/RTCP ports.
	UDPPorts [2]int
	// AnnounceParameterSets puts the parameter sets of each H264/H265
	// clip's first access unit in the SDP (sprop-parameter-sets), as many
	// cameras do; by default they are only in-band.
	AnnounceParameterSets bool
}

// Start serves the clips on paths named by the map keys.
func Start(opts Options, clips map[string]*Media) (*Server, error) {
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	// gortsplib needs a concrete port: resolve ":0" first.
	if host, port, err := net.SplitHostPort(addr); err == nil && port == "0" {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, err
		}
		addr = net.JoinHostPort(host, fmt.Sprint(l.Addr().(*net.TCPAddr).Port))
		l.Close()
	}
	s := &Server{
		Addr:      addr,
		user:      opts.User,
		pass:      opts.Pass,
		streams:   map[string]*served{},
		teardowns: map[string]int{},
		playing:   map[*gortsplib.ServerSession]string{},
		stop:      make(chan struct{}),
	}
	s.server = &gortsplib.Server{Handler: s, RTSPAddress: addr, Listen: s.listen}
	if opts.UDPPorts[0] != 0 {
		s.server.UDPRTPAddress = fmt.Sprintf(":%d", opts.UDPPorts[0])
		s.server.UDPRTCPAddress = fmt.Sprintf(":%d", opts.UDPPorts[1])
	}
	if err := s.server.Start(); err != nil {
		return nil, err
	}
	// Streams of the same clip share its packets.
	packetized := map[*Media][][]*rtp.Packet{}
	for name, clip := range clips {
		forma, err := newFormat(clip.Codec)
		if err != nil {
			s.Close()
			return nil, err
		}
		if opts.AnnounceParameterSets {
			announce(forma, clip.AccessUnits[0])
			if clip.OutOfBandParameterSets {
				clip = withoutParameterSets(clip)
			}
		}
		medi := &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{forma}}
		stream := &gortsplib.ServerStream{Server: s.server, Desc: &description.Session{Medias: []*description.Media{medi}}}
		if err := stream.Initialize(); err != nil {
			s.Close()
			return nil, err
		}
		sv := &served{stream: stream, stop: make(chan struct{})}
		s.streams[name] = sv
		var pkts [][]*rtp.Packet
		if clip.EditPackets == nil {
			if pkts = packetized[clip]; pkts == nil {
				if pkts, err = packetize(forma, clip); err != nil {
					s.Close()
					return nil, err
				}
				packetized[clip] = pkts
			}
		}
		s.wg.Add(1)
		go s.play(sv, medi, forma, clip, pkts)
	}
	return s, nil
}

// URL returns the address of the named clip, without credentials.
func (s *Server) URL(name string) string {
	return "rtsp://" + s.Addr + "/" + name
}

// Pause stops sending the named clip's video while its sessions stay
// open, as a camera whose encoder hangs does; Resume sends it again.
func (s *Server) Pause(name string) { s.setPaused(name, true) }

// Resume undoes Pause.
func (s *Server) Resume(name string) { s.setPaused(name, false) }

// FramesSent returns how many access units the server sent of the named
// clip: on a loaded machine its ticker skips some, and a test of a
// client's rate counts against what was sent rather than the clip's rate.
func (s *Server) FramesSent(name string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sv, ok := s.streams[name]; ok {
		return sv.sent.Load()
	}
	return 0
}

func (s *Server) setPaused(name string, paused bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sv, ok := s.streams[name]; ok {
		sv.paused.Store(paused)
	}
}

// Remove takes the named clip off the server, as a camera that dies does:
// its readers are dropped and new ones are refused.
func (s *Server) Remove(name string) {
	s.mu.Lock()
	sv, ok := s.streams[name]
	delete(s.streams, name)
	s.mu.Unlock()
	if ok {
		close(sv.stop)
		sv.stream.Close()
	}
}

// DropSessions closes the sessions that play the named clip, as a camera
// that drops its sessions now and then does; the clip stays, so clients can
// reconnect at once.
func (s *Server) DropSessions(name string) {
	s.mu.Lock()
	var drop []*gortsplib.ServerSession
	for ss, clip := range s.playing {
		if clip == name {
			drop = append(drop, ss)
		}
	}
	s.mu.Unlock()
	// Not under mu: closing calls OnSessionClose.
	for _, ss := range drop {
		ss.Close()
	}
}

// Teardowns returns how many RTSP TEARDOWN requests the server received
// for the named clip: a client that closes its session properly sends one,
// a client that dies or just drops the connection does not.
func (s *Server) Teardowns(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.teardowns[name]
}

// Close stops the server and drops every reader.
func (s *Server) Close() {
	close(s.stop)
	s.wg.Wait()
	// Not under mu: the server waits for its connections, which may be
	// waiting for mu in lookup.
	s.mu.Lock()
	streams := s.streams
	s.streams = nil
	s.mu.Unlock()
	for _, sv := range streams {
		sv.stream.Close()
	}
	s.server.Close()
}

// newFormat announces no parameter sets in the SDP: real cameras often omit
// them, so clients must pick them up in-band.
func newFormat(codec Codec) (format.Format, error) {
	switch codec {
	case H264:
		return &format.H264{PayloadTyp: 96, PacketizationMode: 1}, nil
	case H265:
		return &format.H265{PayloadTyp: 96}, nil
	case MJPEG:
		return &format.MJPEG{}, nil
	}
	return nil, fmt.Errorf("unknown codec %q", codec)
}

// announce copies the parameter sets among au's NAL units into forma.
func announce(forma format.Format, au [][]byte) {
	for _, nalu := range au {
		switch f := forma.(type) {
		case *format.H264:
			switch h264.NALUType(nalu[0] & 0x1f) {
			case h264.NALUTypeSPS:
				f.SPS = nalu
			case h264.NALUTypePPS:
				f.PPS = nalu
			}
		case *format.H265:
			switch h265.NALUType((nalu[0] >> 1) & 0x3f) {
			case h265.NALUType_VPS_NUT:
				f.VPS = nalu
			case h265.NALUType_SPS_NUT:
				f.SPS = nalu
			case h265.NALUType_PPS_NUT:
				f.PPS = nalu
			}
		}
	}
}

// withoutParameterSets returns a copy of clip without the H264/H265
// parameter sets in its access units.
func withoutParameterSets(clip *Media) *Media {
	out := *clip
	out.AccessUnits = make([][][]byte, len(clip.AccessUnits))
	for i, au := range clip.AccessUnits {
		out.AccessUnits[i] = slices.DeleteFunc(slices.Clone(au), func(nalu []byte) bool {
			switch clip.Codec {
			case H264:
				typ := h264.NALUType(nalu[0] & 0x1f)
				return typ == h264.NALUTypeSPS || typ == h264.NALUTypePPS
			case H265:
				typ := h265.NALUType((nalu[0] >> 1) & 0x3f)
				return typ == h265.NALUType_VPS_NUT || typ == h265.NALUType_SPS_NUT || typ == h265.NALUType_PPS_NUT
			}
			return false
		})
	}
	return &out
}

type auEncoder func(au [][]byte) ([]*rtp.Packet, error)

func newEncoder(forma format.Format) (auEncoder, error) {
	switch f := forma.(type) {
	case *format.H264:
		enc, err := f.CreateEncoder()
		return enc.Encode, err
	case *format.H265:
		enc, err := f.CreateEncoder()
		return enc.Encode, err
	case *format.MJPEG:
		enc, err := f.CreateEncoder()
		if err != nil {
			return nil, err
		}
		return func(au [][]byte) ([]*rtp.Packet, error) { return enc.Encode(au[0]) }, nil
	}
	return nil, fmt.Errorf("no encoder for %s", forma.Codec())
}

// packetize turns each access unit of clip into RTP packets once, so that
// a server of many streams costs little: play only numbers and stamps
// them. An access unit that does not packetize has no packets.
func packetize(forma format.Format, clip *Media) ([][]*rtp.Packet, error) {
	encode, err := newEncoder(forma)
	if err != nil {
		return nil, err
	}
	pkts := make([][]*rtp.Packet, len(clip.AccessUnits))
	for i, au := range clip.AccessUnits {
		pkts[i], _ = encode(au) // the live path skips such access units too.
	}
	return pkts, nil
}

// play sends the clip in a loop: the packetized access units when there
// are some (they repeat every loop, so play numbers them, from a random
// start, and stamps them), otherwise access units packetized anew each
// time, which EditPackets may change.
func (s *Server) play(sv *served, medi *description.Media, forma format.Format, clip *Media, packetized [][]*rtp.Packet) {
	defer s.wg.Done()
	encode, err := newEncoder(forma)
	if err != nil {
		panic(err) // newFormat only returns formats that have encoders.
	}
	seq := uint16(rand.UintN(1 << 16)) // as gortsplib's encoders start
	interval := time.Second / time.Duration(clip.FPS)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var rtpTime uint32
	for i := 0; ; i++ {
		select {
		case <-s.stop:
			return
		case <-sv.stop:
			return
		case <-ticker.C:
		}
		if sv.paused.Load() {
			continue
		}
		if packetized != nil {
			cached := packetized[i%len(packetized)]
			if cached == nil {
				continue
			}
			for _, c := range cached {
				pkt := *c // the header is the send's own; the payload is shared, read only.
				pkt.SequenceNumber = seq
				pkt.Timestamp = rtpTime
				seq++
				sv.faults.write(sv.stream, medi, &pkt)
			}
			sv.sent.Add(1)
			rtpTime += uint32(forma.ClockRate() / clip.FPS)
			continue
		}
		pkts, err := encode(clip.AccessUnits[i%len(clip.AccessUnits)])
		if err != nil {
			continue
		}
		if clip.EditPackets != nil {
			pkts = clip.EditPackets(pkts)
		}
		for _, pkt := range pkts {
			pkt.Timestamp = rtpTime
			sv.faults.write(sv.stream, medi, pkt)
		}
		sv.sent.Add(1)
		rtpTime += uint32(forma.ClockRate() / clip.FPS)
	}
}

func (s *Server) lookup(path string) (*gortsplib.ServerStream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sv, ok := s.streams[trimPath(path)]
	if !ok {
		return nil, errors.New("no such stream")
	}
	return sv.stream, nil
}

// trimPath maps "/name" and "/name/trackID=0" to "name".
func trimPath(p string) string {
	for len(p) > 0 && p[0] == '/' {
		p = p[1:]
	}
	for i := range p {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return p
}

func (s *Server) authorized(conn *gortsplib.ServerConn, req *base.Request) bool {
	return s.user == "" || conn.VerifyCredentials(req, s.user, s.pass)
}

// Sessions returns the sessions playing the named clip now.
func (s *Server) Sessions(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, clip := range s.playing {
		if clip == name {
			n++
		}
	}
	return n
}

// OnRequest implements gortsplib.ServerHandlerOnRequest; it counts
// TEARDOWNs.
func (s *Server) OnRequest(_ *gortsplib.ServerConn, req *base.Request) {
	if req.Method != base.Teardown || req.URL == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.teardowns[trimPath(req.URL.Path)]++
}

// OnDescribe implements gortsplib.ServerHandlerOnDescribe.
func (s *Server) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if !s.authorized(ctx.Conn, ctx.Request) {
		return &base.Response{StatusCode: base.StatusUnauthorized}, nil, liberrors.ErrServerAuth{}
	}
	st, err := s.lookup(ctx.Path)
	if err != nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, err
	}
	return &base.Response{StatusCode: base.StatusOK}, st, nil
}

// OnSetup implements gortsplib.ServerHandlerOnSetup.
func (s *Server) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if !s.authorized(ctx.Conn, ctx.Request) {
		return &base.Response{StatusCode: base.StatusUnauthorized}, nil, liberrors.ErrServerAuth{}
	}
	st, err := s.lookup(ctx.Path)
	if err != nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, err
	}
	return &base.Response{StatusCode: base.StatusOK}, st, nil
}

// OnPlay implements gortsplib.ServerHandlerOnPlay.
func (s *Server) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	s.bind(ctx.Conn, ctx.Path)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.playing[ctx.Session] = trimPath(ctx.Path)
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnSessionClose implements gortsplib.ServerHandlerOnSessionClose.
func (s *Server) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.playing, ctx.Session)
}
