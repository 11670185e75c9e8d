package camera

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/pion/rtp"

	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/video"
)

// Reconnect backoff bounds. After a session that delivered video the next
// attempt waits minBackoff again: only attempts that keep failing back off.
const (
	minBackoff = time.Second
	maxBackoff = 30 * time.Second
)

// session keeps one camera's RTSP session alive, retrying forever with
// exponential backoff: the connection (redirects, allowDial, the RTP over
// TCP bypass), the reasons sessions end, the stall watch, the transport
// and the counters. It hands every access unit to its pictures.
//
// Locking: the counters are atomics, read by anyone at any time; the
// fields after mu are guarded by mu; the fields before the counters are
// set when the stream is made. What one attempt needs lives on its
// goroutines (packetsIn), and whether the camera stalled on run's.
type session struct {
	cfg      config.Camera
	logger   *slog.Logger
	pictures *pictures
	// allowDial, when set, vets every host:port the session connects to,
	// the camera's and those it redirects to.
	allowDial func(addr string) error

	connected    atomic.Bool
	frames       atomic.Uint64
	keyframes    atomic.Uint64
	bytes        atomic.Uint64
	packetsLost  atomic.Uint64
	bypassed     atomic.Uint64             // packets the connection handed on before gortsplib (rtpBypass)
	reconnects   [numReasons]atomic.Uint64 // by the reason the session before ended
	decodeErrors atomic.Uint64             // of the packets and access units, before the decoders
	lastFrame    atomic.Int64              // unix nanoseconds
	lastEnd      atomic.Int32              // the Reason the latest session ended with, plus 1; 0: none ended
	basicWarned  atomic.Bool               // the password went as Basic over plain RTSP, and that was logged

	mu            sync.Mutex
	codec         video.Codec
	width, height int
	transport     string    // negotiated by the session: tcp or udp
	rateSince     time.Time // start of the frame rate's window
	rateFrames    uint64    // frames received before it
	frameRate     float64   // frames per second over the latest window
}

// status returns the session's counters and state; the decoders' errors
// are the pictures'.
func (s *session) status() Status {
	st := Status{
		Connected:         s.connected.Load(),
		FramesReceived:    s.frames.Load(),
		KeyframesReceived: s.keyframes.Load(),
		BytesReceived:     s.bytes.Load(),
		PacketsLost:       s.packetsLost.Load(),
		DecodeErrors:      s.decodeErrors.Load(),
	}
	for r := range st.Reconnects {
		st.Reconnects[r] = s.reconnects[r].Load()
	}
	if ns := s.lastFrame.Load(); ns != 0 {
		st.LastFrame = time.Unix(0, ns)
	}
	if r := s.lastEnd.Load(); r > 0 {
		st.LastEnded = Reason(r - 1).String()
	}
	s.mu.Lock()
	st.Codec, st.Width, st.Height, st.Transport = s.codec, s.width, s.height, s.transport
	st.FrameRate = s.frameRate
	s.mu.Unlock()
	return st
}

// frameRateWindow is how long the frames of one frame rate reading come in.
const frameRateWindow = 5 * time.Second

// measureFrameRate counts a frame into the frame rate. Needs mu.
func (s *session) measureFrameRate(now time.Time) {
	frames := s.frames.Load()
	switch elapsed := now.Sub(s.rateSince); {
	case s.rateSince.IsZero() || elapsed > 3*frameRateWindow: // a new session, or one that stalled
		s.rateSince, s.rateFrames = now, frames
	case elapsed >= frameRateWindow:
		s.frameRate = float64(frames-s.rateFrames) / elapsed.Seconds()
		s.rateSince, s.rateFrames = now, frames
	}
}

// run keeps connecting until ctx ends.
func (s *session) run(ctx context.Context) {
	backoff := minBackoff
	// Whether the camera stalled: the state outlives the session.
	var stalled bool
	for {
		framesBefore := s.frames.Load()
		err := s.connect(ctx, &stalled)
		s.connected.Store(false)
		if ctx.Err() != nil {
			return
		}
		// A camera that drops its session now and then (a stale Digest
		// nonce, a keepalive it dislikes) is back within a second; one
		// whose picture is too large will announce it again.
		if s.frames.Load() > framesBefore && !errors.Is(err, errPictureTooLarge) {
			backoff = minBackoff
		}
		reason := reasonOf(err)
		s.lastEnd.Store(int32(reason) + 1)
		// Jitter spreads the reconnects of cameras that failed together.
		wait := backoff/2 + rand.N(backoff/2+1)
		s.logger.Warn("Camera session ended, reconnecting", "reason", reason.String(), "err", redact(s.cfg, err),
			"retry_in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		s.reconnects[reason].Add(1)
		backoff = min(2*backoff, maxBackoff)
	}
}

// connect runs one RTSP session until it fails or ctx ends.
func (s *session) connect(ctx context.Context, stalled *bool) error {
	u, err := base.ParseURL(s.cfg.StreamURL())
	if err != nil {
		return errors.New("invalid stream URL")
	}
	user, pass := s.cfg.Credentials()
	if user != "" {
		u.User = url.UserPassword(user, pass)
	}
	redirects := &redirects{credentials: user != "", allow: s.allowDial, unpaced: s.pictures.decodesAll}
	if u.Scheme == "rtsp" {
		redirects.bypass = &rtpBypass{}
	}
	auth := s.newAuthHooks(user, pass)
	timeout := time.Duration(s.cfg.Timeout)
	in := &packetsIn{end: make(chan error, 1)}
	c := &gortsplib.Client{
		Scheme:        u.Scheme,
		Host:          u.Host,
		ReadTimeout:   timeout,
		WriteTimeout:  timeout,
		Transport:     transport(s.cfg.Transport),
		OnPacketsLost: func(uint64) {}, // countPacket counts; this is wrong over TCP, and printed if unset
		// Malformed RTP/RTCP packets, or of another SSRC; gortsplib would
		// print them to stderr.
		OnDecodeError: func(error) { s.decodeErrors.Add(1); in.arrived.Add(1) },
		DialContext:   redirects.dialContext,
		OnRequest:     auth.onRequest,
		OnResponse:    func(res *base.Response) { redirects.onResponse(res); auth.onResponse(res) },
		// With transport auto, gortsplib falls back to TCP when the camera
		// refuses UDP or no UDP packet arrives.
		OnTransportSwitch: func(err error) {
			s.logger.Info("Camera transport switched", "err", err)
			s.mu.Lock()
			s.transport = config.TransportTCP
			s.mu.Unlock()
		},
		OnServerRequest: answerParameterRequest,
	}
	if err := c.Start2(); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, c.Close)
	defer stop()
	defer c.Close()

	desc, _, err := c.Describe(u)
	if err != nil {
		return auth.explain(err)
	}
	medi, forma, tr, err := findTrack(desc)
	if err != nil {
		return err
	}
	width, height := tr.size()
	if err := checkPicture(s.cfg.MaxPicturePixels, width, height); err != nil { // as the SDP announces it
		return err
	}
	res, err := c.Setup(desc.BaseURL, medi, 0, 0)
	if err != nil {
		return err
	}
	transport, channel, err := negotiatedTransport(res)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.codec, s.transport = tr.codec(), transport
	// The SDP's parameter sets may give the size before any frame.
	s.width, s.height = width, height
	s.mu.Unlock()
	in.keepAll = s.pictures.newSession() // before the reader goroutine starts
	deliver := func(pkt *rtp.Packet) {
		if !in.ended && s.countPacket(in, pkt) {
			s.onPacket(ctx, in, tr, pkt)
		}
	}
	bypass := redirects.bypass
	// The NAL depacketizer copies what it keeps of a payload; rtpmjpeg
	// keeps the payloads of a JPEG's fragments until its last.
	if _, copies := tr.(*nalTrack); !copies || transport != config.TransportTCP || channel < 0 {
		bypass = nil
	}
	if bypass != nil {
		pt := forma.PayloadType()
		bypass.install(byte(channel), func(pkt *rtp.Packet) {
			// What gortsplib delivers: its format's packets, of the
			// source of the first one.
			if pkt.PayloadType != pt || !in.fromSource(pkt.SSRC) {
				return
			}
			s.bypassed.Add(1)
			deliver(pkt)
		})
	}
	c.OnPacketRTP(medi, forma, func(pkt *rtp.Packet) {
		if len(pkt.Payload) == 0 && bypass != nil && bypass.used() {
			return // the bypass had it
		}
		deliver(pkt)
	})
	if _, err := c.Play(nil); err != nil {
		return err
	}
	s.connected.Store(true)
	s.logger.Info("Camera session started", "codec", tr.codec(), "transport", transport)
	start := time.Now()
	stopWatching := s.watchStall(start, stalled)
	err = s.waitPicture(c, in, start)
	stopWatching(err)
	return err
}

// watchStall logs once when the session stays up without video for longer
// than the camera's timeout, and once when video resumes: a camera whose
// encoder hangs can keep its session alive with RTCP alone. A session that
// ends for want of video stalled too, and reconnecting does not resume the
// video, so the state outlives the session: one that gortsplib ends for
// want of packets (its clock counts whole seconds, so that may come before
// the timeout here) is a stall. It returns the function that stops
// watching, given the session's error, once the watcher is done.
func (s *session) watchStall(sessionStart time.Time, stalled *bool) (stop func(ended error)) {
	timeout := time.Duration(s.cfg.Timeout)
	done, stopped := make(chan struct{}), make(chan struct{})
	check := func(now time.Time, sessionStalled bool) {
		last, since := time.Unix(0, s.lastFrame.Load()), sessionStart
		if last.After(since) {
			since = last
		}
		switch age := now.Sub(since); {
		case !*stalled && (age > timeout || sessionStalled):
			*stalled = true
			s.logger.Warn("Camera stalled: session up but no video", "last_frame_age", age.Round(time.Second))
		case *stalled && now.Sub(last) <= timeout:
			*stalled = false
			s.logger.Info("Camera video resumed")
		}
	}
	go func() {
		defer close(stopped)
		ticker := time.NewTicker(min(timeout/2, time.Second))
		defer ticker.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-ticker.C:
				check(now, false)
			}
		}
	}()
	return func(ended error) {
		close(done)
		<-stopped
		check(time.Now(), reasonOf(ended) == ReasonStalled)
	}
}

// negotiatedTransport reads the lower transport of a SETUP response, which
// gortsplib has checked already, and the interleaved channel of its RTP
// over TCP (-1 for none).
func negotiatedTransport(res *base.Response) (string, int, error) {
	var th headers.Transport
	if err := th.Unmarshal(res.Header["Transport"]); err != nil {
		return "", -1, err
	}
	if th.Protocol == headers.TransportProtocolTCP {
		channel := -1
		if th.InterleavedIDs != nil && th.InterleavedIDs[0] >= 0 && th.InterleavedIDs[0] <= 0xff {
			channel = th.InterleavedIDs[0]
		}
		return config.TransportTCP, channel, nil
	}
	return config.TransportUDP, -1, nil
}

func transport(name string) *gortsplib.Transport {
	var t gortsplib.Transport
	switch name {
	case config.TransportUDP:
		t = gortsplib.TransportUDP
	case config.TransportAuto:
		return nil // gortsplib tries UDP, then falls back to TCP
	default:
		t = gortsplib.TransportTCP
	}
	return &t
}

// onPacket runs on gortsplib's reader goroutine: it must never decode.
func (s *session) onPacket(ctx context.Context, in *packetsIn, tr track, pkt *rtp.Packet) {
	s.bytes.Add(uint64(len(pkt.Payload)))
	au, damaged, err := tr.depacketize(pkt, in.keepAll)
	if errors.Is(err, errIncomplete) {
		return
	}
	if err != nil {
		s.decodeErrors.Add(1)
		if au == nil {
			return
		}
	}
	if err := tr.observe(au); err != nil {
		s.decodeErrors.Add(1)
	}
	width, height := tr.size()
	// Before the picture is counted or stored: the camera stays down. The
	// decoder's pictures count whatever the parameter sets say: one the
	// exporter cannot read may come after a readable one of the same id.
	err = checkPicture(s.cfg.MaxPicturePixels, width, height)
	if err == nil {
		err = s.pictures.refused()
	}
	if err != nil {
		in.endSession(err)
		return
	}
	now := time.Now()
	// Access units of SEI or parameter sets alone keep a lying camera's
	// session busy without a picture: they are no frame, and it stays down.
	// Nor is one that lost a slice, which must not replace a whole key
	// frame either.
	picture := !damaged && tr.picture(au)
	if picture {
		s.frames.Add(1)
		s.lastFrame.Store(now.UnixNano())
	}
	var key [][]byte
	if !damaged {
		key = tr.keyframe(au)
	}
	if key != nil {
		s.keyframes.Add(1)
	}

	if width == 0 { // the parameter sets did not tell: the decoder's picture does
		width, height = s.pictures.decodedSize()
	}
	s.mu.Lock()
	s.width, s.height = width, height
	if picture {
		s.measureFrameRate(now)
	}
	s.mu.Unlock()
	in.keepAll = s.pictures.received(ctx, tr, au, key, picture, damaged, now)
}

// redact removes the camera's credentials from an error message: RTSP
// libraries may quote the URL they dialed.
func redact(cfg config.Camera, err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	user, pass := cfg.Credentials()
	if pass == "" {
		return msg
	}
	for _, secret := range []string{url.UserPassword(user, pass).String(), pass, url.QueryEscape(pass)} {
		msg = strings.ReplaceAll(msg, secret, "<secret>")
	}
	return msg
}
