package camera

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/pion/rtp"

	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/imagestats"
	"github.com/camera-exporter/camera_exporter/video"
)

// Reconnect backoff bounds. After a session that delivered video the next
// attempt waits minBackoff again: only attempts that keep failing back off.
const (
	minBackoff = time.Second
	maxBackoff = 30 * time.Second
)

// noKeyframeTimeouts is how many camera timeouts without a key frame make
// a stream without recovery point SEI count as intra refresh: cameras with
// a long GOP send a key frame every 10 to 20 s, more than one timeout.
const noKeyframeTimeouts = 3

// decodeQueueFrames bounds the frames waiting for the full decoder; beyond
// it frames are dropped until the next key frame.
const decodeQueueFrames = 32

// Stream keeps one camera's RTSP session alive, retrying forever with
// exponential backoff, and serves its status and analysis at scrape time.
type Stream struct {
	cfg      config.Camera
	decoders *DecoderPool
	logger   *slog.Logger
	cancel   context.CancelFunc
	done     chan struct{}
	// allowDial, when set, vets every host:port the session connects to,
	// the camera's and those it redirects to.
	allowDial func(addr string) error
	// snapshotWidth, when above 0, makes analyses return a picture at
	// most this wide and this tall, for the operator pages.
	snapshotWidth int

	connected    atomic.Bool
	frames       atomic.Uint64
	keyframes    atomic.Uint64
	bytes        atomic.Uint64
	packetsLost  atomic.Uint64
	bypassed     atomic.Uint64             // packets the connection handed on before gortsplib (rtpBypass)
	reconnects   [numReasons]atomic.Uint64 // by the reason the session before ended
	decodeErrors atomic.Uint64
	lastFrame    atomic.Int64 // unix nanoseconds
	lastEnd      atomic.Int32 // the Reason the latest session ended with, plus 1; 0: none ended
	stalled      bool         // no video for the timeout; owned by the session's watchStall

	basicWarned atomic.Bool // the password went as Basic over plain RTSP, and that was logged
	// decodedTooLarge is the error of a picture of this session that the
	// decoder made larger than max_picture_pixels, which ends the session
	// at its next access unit whatever its parameter sets say.
	decodedTooLarge atomic.Pointer[error]

	mu            sync.Mutex // guards the fields below
	codec         video.Codec
	width, height int
	transport     string           // negotiated by the session: tcp or udp
	keyframeAU    [][]byte         // latest key frame, parameter sets included
	keyframeSeq   uint64           // counts stored key frames, to skip decoding one twice
	keyframeHash  uint64           // of the latest key frame's coded picture
	firstPicture  time.Time        // of this session
	lastKey       time.Time        // this session's latest key frame
	keyGap        time.Duration    // the longest wait for a key frame seen
	decodeAll     bool             // every frame is decoded: configured, or for intra refresh
	intraRefresh  bool             // no key frames: decoding may resume at any frame
	rateSince     time.Time        // start of the frame rate's window
	rateFrames    uint64           // frames received before it
	frameRate     float64          // frames per second over the latest window
	queue         chan queuedFrame // to the full decoder, when decodeAll
	dropUntilKey  bool             // the queue overflowed: skip to the next key frame

	// sessionSeq counts sessions: a picture's size counts for the session
	// its access unit came in only.
	sessionSeq uint64
	// The size of the latest picture decoded of this session within
	// max_picture_pixels: the size where the parameter sets do not tell
	// it (an SPS beyond reading).
	decodedWidth, decodedHeight int

	analysisMu sync.Mutex // serializes decoder use; guards the fields below
	stopped    bool
	decoder    Decoder
	// The key frame decoded last and its result, error included: a key
	// frame is decoded once however often it is analyzed, so that
	// decode errors count key frames, not scrapes.
	analyzedSeq uint64 // its keyframeSeq
	lastStats   imagestats.Stats
	lastErr     error
	pictureSeq  uint64 // counts pictures decoded, for Frame.Seq
	snapshotSeq uint64 // the picture Frame.Snapshot was converted from last
	pictureHash uint64 // of the coded picture decoded last, for Frame.Coded
	pictureKey  bool   // whether it was a key frame, for Frame.Key
	// decoderSession is the session whose frames the stream's own decoder
	// decodes: each session has its own, whose pictures are the session's.
	decoderSession uint64
	// decoderChecked is the picture size of the stream's own decoder last
	// held to max_picture_pixels: it changes with the parameter sets only.
	decoderChecked [2]int
}

type queuedFrame struct {
	au      [][]byte
	codec   video.Codec
	session uint64
	resume  bool
	key     bool // self-contained: its decode errors are the camera's
	hash    uint64
	// params go first where decoding resumes at a frame that is no key
	// frame: the SDP may be the only place the camera sends them.
	params [][]byte
}

// NewStream starts a camera's session loop; Stop ends it.
// Key frame analyses borrow their decoders from decoders.
func NewStream(cfg config.Camera, decoders *DecoderPool, logger *slog.Logger) *Stream {
	return newStream(cfg, decoders, logger, streamOptions{})
}

// streamOptions are a stream's settings that are not the camera's.
type streamOptions struct {
	allowDial     func(addr string) error
	snapshotWidth int
}

func newStream(cfg config.Camera, decoders *DecoderPool, logger *slog.Logger, opts streamOptions) *Stream {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Stream{
		cfg:           cfg,
		decoders:      decoders,
		logger:        logger.With("camera", cfg.Name),
		cancel:        cancel,
		done:          make(chan struct{}),
		allowDial:     opts.allowDial,
		snapshotWidth: opts.snapshotWidth,
		decodeAll:     cfg.Decode == config.DecodeAll,
	}
	go s.run(ctx)
	return s
}

// Name is the camera's configured name.
func (s *Stream) Name() string { return s.cfg.Name }

// Config is the camera configuration the stream runs with.
func (s *Stream) Config() config.Camera { return s.cfg }

// Stop ends the session and frees the decoder.
func (s *Stream) Stop() {
	s.cancel()
	<-s.done
	s.analysisMu.Lock()
	defer s.analysisMu.Unlock()
	s.stopped = true
	if s.decoder != nil {
		s.decoder.Close()
		s.decoder = nil
	}
}

// ErrStopped is returned by Analyze once the stream was stopped.
var ErrStopped = errors.New("camera stream stopped")

// Status returns the stream's counters and session state.
func (s *Stream) Status() Status {
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
func (s *Stream) measureFrameRate(now time.Time) {
	frames := s.frames.Load()
	switch elapsed := now.Sub(s.rateSince); {
	case s.rateSince.IsZero() || elapsed > 3*frameRateWindow: // a new session, or one that stalled
		s.rateSince, s.rateFrames = now, frames
	case elapsed >= frameRateWindow:
		s.frameRate = float64(frames-s.rateFrames) / elapsed.Seconds()
		s.rateSince, s.rateFrames = now, frames
	}
}

// Ready reports whether a picture to analyze has arrived: a key frame, or,
// when every frame is decoded, any frame.
func (s *Stream) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keyframeAU != nil || s.decodeAll && s.frames.Load() > 0
}

// Up reports whether the session is up and a frame arrived within the
// camera's timeout.
func (s *Stream) Up(now time.Time) bool {
	last := s.lastFrame.Load()
	return s.connected.Load() && last != 0 && now.Sub(time.Unix(0, last)) < time.Duration(s.cfg.Timeout)
}

// Frame is the result of analyzing a camera's latest picture.
type Frame struct {
	// Seq identifies the picture: analyses of the same picture, as of a
	// key frame that was not followed by another yet, share it.
	Seq   uint64
	Stats imagestats.Stats
	// Coded hashes the coded picture the analysis decoded (slice data or
	// JPEG, without parameter sets or SEI): pictures of different Seq with
	// the same Coded are one picture the camera sent again, as a stuck
	// encoder or a recorder repeating a lost source's last frame do.
	Coded uint64
	// Key tells a picture decoded from a key frame, coded on its own, from
	// one coded against earlier pictures, which copies them where little
	// changed.
	Key bool
	// Picture is the picture converted for the detector, when Analyze was
	// given a size function: the caller's.
	Picture video.Image
	// Snapshot is the picture in BGR, at most the stream's snapshot width
	// wide and tall, when the stream keeps snapshots and the picture was
	// decoded for this analysis (not for an earlier one of the same Seq):
	// the caller's.
	Snapshot video.Image
}

// Analyze decodes and measures the camera's latest picture. In key frame
// mode a key frame is decoded and measured once, however often it is
// analyzed, by a decoder borrowed for the analysis. With a size function,
// typically detector.ScaledSize of a detector, the picture is also
// converted to BGR and scaled to size(width, height). Before there is a
// picture to analyze it returns video.ErrNoPicture.
func (s *Stream) Analyze(size func(srcW, srcH int) (width, height int)) (Frame, error) {
	s.analysisMu.Lock()
	defer s.analysisMu.Unlock()
	if s.stopped {
		return Frame{}, ErrStopped
	}
	s.mu.Lock()
	decodeAll := s.decodeAll
	key := keyframe{au: s.keyframeAU, seq: s.keyframeSeq, hash: s.keyframeHash, codec: s.codec, session: s.sessionSeq}
	s.mu.Unlock()

	var dec Decoder // holds the latest picture, once decoded or borrowed
	var stats imagestats.Stats
	if decodeAll {
		if s.decoder == nil {
			return Frame{}, video.ErrNoPicture
		}
		dec = s.decoder
		var err error
		if stats, err = dec.Analyze(*s.cfg.DarkThreshold); err != nil {
			return Frame{}, err
		}
		if err := s.checkDecodedSize(stats.Width, stats.Height, s.decoderSession); err != nil {
			return Frame{}, err
		}
	} else {
		if key.au == nil {
			return Frame{}, video.ErrNoPicture
		}
		if key.seq != s.analyzedSeq {
			borrowed, err := s.decoders.get(key.codec)
			if err != nil {
				return Frame{}, err
			}
			defer s.decoders.put(key.codec, borrowed)
			s.lastStats, s.lastErr = s.decodeKeyframe(borrowed, key)
			if s.lastErr == nil {
				s.lastErr = s.checkDecodedSize(s.lastStats.Width, s.lastStats.Height, key.session)
			}
			s.analyzedSeq = key.seq
			dec = borrowed
		}
		if s.lastErr != nil {
			return Frame{}, s.lastErr
		}
		stats = s.lastStats
	}
	frame := Frame{Seq: s.pictureSeq, Stats: stats, Coded: s.pictureHash, Key: s.pictureKey}
	// Once per picture: a stream that decodes every frame is analyzed
	// from its decoder's latest picture, again and again while no new one
	// came.
	if s.snapshotWidth > 0 && dec != nil && stats.Width > 0 && frame.Seq != s.snapshotSeq {
		w, h := fitSnapshot(stats.Width, stats.Height, s.snapshotWidth)
		snap, err := dec.Picture(w, h)
		if err != nil {
			return Frame{}, fmt.Errorf("converting picture for the snapshot: %w", err)
		}
		frame.Snapshot, s.snapshotSeq = snap, frame.Seq
	}
	if size == nil {
		return frame, nil
	}
	// Converted for each analysis, not kept: a hundred cameras' pictures
	// would stay in memory for the rare analysis of a key frame analyzed
	// before (scrapes closer together than the key frames).
	if dec == nil {
		// The key frame was analyzed before: decode it again, on a
		// borrowed decoder. It decoded once, so an error now is the
		// machine's, not the camera's.
		borrowed, err := s.decoders.get(key.codec)
		if err != nil {
			return Frame{}, err
		}
		defer s.decoders.put(key.codec, borrowed)
		if err := borrowed.DecodeKeyframe(key.au); err != nil {
			return Frame{}, fmt.Errorf("decoding key frame again: %w", err)
		}
		dec = borrowed
	}
	pic, err := dec.Picture(size(frame.Stats.Width, frame.Stats.Height))
	if err != nil {
		return Frame{}, fmt.Errorf("converting picture for the detector: %w", err)
	}
	frame.Picture = pic
	return frame, nil
}

// checkDecodedSize refuses a picture that the decoder made larger than
// max_picture_pixels: the limit holds for the pictures decoded too, where
// the parameter sets did not tell their size or lied about it. For a
// picture of the session in progress it keeps the size, or latches the
// error, on which the session's next access unit ends the session as one
// of a picture too large by its parameter sets. A picture of an earlier
// session, as the stream's own decoder keeps and an analysis started
// before the session may finish after, tells nothing of this one.
func (s *Stream) checkDecodedSize(width, height int, session uint64) error {
	err := s.checkPicture(width, height)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case session != s.sessionSeq:
	case err != nil:
		s.decodedTooLarge.Store(&err)
	default:
		s.decodedWidth, s.decodedHeight = width, height
	}
	return err
}

// keyframe is the latest key frame as Analyze finds it.
type keyframe struct {
	au      [][]byte
	seq     uint64
	hash    uint64
	codec   video.Codec
	session uint64 // that it came in
}

// decodeKeyframe decodes and measures a key frame. Needs analysisMu.
func (s *Stream) decodeKeyframe(dec Decoder, key keyframe) (imagestats.Stats, error) {
	if err := dec.DecodeKeyframe(key.au); err != nil {
		s.decodeErrors.Add(1)
		return imagestats.Stats{}, fmt.Errorf("decoding key frame: %w", err)
	}
	s.pictureSeq++
	s.pictureHash, s.pictureKey = key.hash, true
	return dec.Analyze(*s.cfg.DarkThreshold)
}

// decoderFor returns the stream's own decoder for the frames of a session
// in codec, which decodes every frame, replacing the one of another
// session: its latest picture, and its size, are the camera's before it
// reconnected, maybe in another codec or size. Needs analysisMu.
func (s *Stream) decoderFor(codec video.Codec, session uint64) (Decoder, error) {
	if s.decoder != nil && s.decoderSession == session { // a session has one codec
		return s.decoder, nil
	}
	if s.decoder != nil {
		s.decoder.Close()
		s.decoder = nil
	}
	dec, err := s.decoders.newDecoder(codec)
	if err != nil {
		return nil, err
	}
	s.decoder, s.decoderSession, s.decoderChecked = dec, session, [2]int{}
	return dec, nil
}

func (s *Stream) run(ctx context.Context) {
	defer close(s.done)
	backoff := minBackoff
	for {
		framesBefore := s.frames.Load()
		err := s.session(ctx)
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
		s.logger.Warn("Camera session ended, reconnecting", "reason", reason.String(), "err", s.redact(err),
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

// session runs one RTSP session until it fails or ctx ends.
func (s *Stream) session(ctx context.Context) error {
	u, err := base.ParseURL(s.cfg.StreamURL())
	if err != nil {
		return errors.New("invalid stream URL")
	}
	user, pass := s.cfg.Credentials()
	if user != "" {
		u.User = url.UserPassword(user, pass)
	}
	redirects := &redirects{credentials: user != "", allow: s.allowDial, unpaced: s.decodesAll}
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
	if err := s.checkPicture(tr.size()); err != nil { // as the SDP announces it
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
	s.width, s.height = tr.size()
	s.sessionSeq++
	s.decodedWidth, s.decodedHeight = 0, 0
	s.decodedTooLarge.Store(nil)
	s.keyframeAU = nil // the last session's key frame may be of another codec
	s.firstPicture, s.lastKey = time.Time{}, time.Time{}
	in.keepAll = s.decodeAll // before the reader goroutine starts
	s.mu.Unlock()
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
	stopWatching := s.watchStall(start)
	err = s.waitPicture(c, in, start)
	stopWatching(err)
	return err
}

// decodesAll reports whether the stream decodes every frame now.
func (s *Stream) decodesAll() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.decodeAll
}

// watchStall logs once when the session stays up without video for longer
// than the camera's timeout, and once when video resumes: a camera whose
// encoder hangs can keep its session alive with RTCP alone. A session that
// ends for want of video stalled too, and reconnecting does not resume the
// video, so the state outlives the session: one that gortsplib ends for
// want of packets (its clock counts whole seconds, so that may come before
// the timeout here) is a stall. It returns the function that stops
// watching, given the session's error, once the watcher is done.
func (s *Stream) watchStall(sessionStart time.Time) (stop func(ended error)) {
	timeout := time.Duration(s.cfg.Timeout)
	done, stopped := make(chan struct{}), make(chan struct{})
	check := func(now time.Time, sessionStalled bool) {
		last, since := time.Unix(0, s.lastFrame.Load()), sessionStart
		if last.After(since) {
			since = last
		}
		switch age := now.Sub(since); {
		case !s.stalled && (age > timeout || sessionStalled):
			s.stalled = true
			s.logger.Warn("Camera stalled: session up but no video", "last_frame_age", age.Round(time.Second))
		case s.stalled && now.Sub(last) <= timeout:
			s.stalled = false
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
func (s *Stream) onPacket(ctx context.Context, in *packetsIn, tr track, pkt *rtp.Packet) {
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
	err = s.checkPicture(width, height)
	if decodedErr := s.decodedTooLarge.Load(); err == nil && decodedErr != nil {
		err = *decodedErr
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

	s.mu.Lock()
	defer s.mu.Unlock()
	if width == 0 { // the parameter sets did not tell: the decoder's picture does
		width, height = s.decodedWidth, s.decodedHeight
	}
	s.width, s.height = width, height
	if picture {
		s.measureFrameRate(now)
	}
	if picture && s.firstPicture.IsZero() {
		s.firstPicture = now
	}
	if key != nil {
		s.keyframeAU = key
		s.keyframeSeq++
		s.keyframeHash = tr.pictureHash(key)
		s.keyframeCame(now)
	} else if !s.intraRefresh {
		// Parsing SEI of every frame is wasted once a key frame came: only
		// a recovery point before the first one tells intra refresh.
		s.detectIntraRefresh(now, s.lastKey.IsZero() && tr.recoveryPoint(au))
	}
	if s.decodeAll && damaged {
		s.dropUntilKey = true // the frames after it refer to its picture
	}
	// libavcodec fails on an access unit without a picture ("no frame"),
	// and the track keeps its parameter sets for the frames that need them.
	if s.decodeAll && picture {
		var params [][]byte
		if key == nil && s.intraRefresh {
			params = tr.paramSets()
		}
		s.enqueue(ctx, tr.codec(), au, key, params, tr.pictureHash(au), s.sessionSeq)
	}
	in.keepAll = s.decodeAll
}

// detectIntraRefresh tells an intra-refresh stream, which only decoding
// every frame recovers pictures of, from one with a long GOP, whose key
// frames are enough: a recovery point before any key frame of the session,
// or no key frame for several timeouts, or twice the longest wait seen
// before, so that a GOP longer than those timeouts switches once, not once
// per GOP. Needs mu.
func (s *Stream) detectIntraRefresh(now time.Time, recoveryPoint bool) {
	since := s.lastKey
	if since.IsZero() {
		since = s.firstPicture
	}
	if since.IsZero() {
		return
	}
	span := max(noKeyframeTimeouts*time.Duration(s.cfg.Timeout), 2*s.keyGap)
	var evidence string
	switch {
	case recoveryPoint && s.lastKey.IsZero():
		evidence = "recovery point SEI"
	case now.Sub(since) > span:
		evidence = "no key frame for " + span.String()
	default:
		return
	}
	s.intraRefresh, s.decodeAll = true, true
	s.logger.Info("Intra refresh, decoding every frame", "evidence", evidence)
}

// keyframeCame leaves intra refresh mode, and the automatic decoding of
// every frame with it: a camera that sends key frames again is decoded at
// its key frames only. Needs mu.
func (s *Stream) keyframeCame(now time.Time) {
	since := s.lastKey
	if since.IsZero() {
		since = s.firstPicture
	}
	s.keyGap = max(s.keyGap, now.Sub(since))
	s.lastKey = now
	if !s.intraRefresh {
		return
	}
	s.intraRefresh = false
	if s.cfg.Decode == config.DecodeAll {
		return
	}
	s.decodeAll = false
	if s.queue != nil {
		close(s.queue) // ends the decode goroutine
		s.queue, s.dropUntilKey = nil, false
	}
	s.logger.Info("Key frames again, back to decoding key frames only")
}

// errPictureTooLarge is the error of a picture beyond max_picture_pixels.
var errPictureTooLarge = errors.New("exceeds max_picture_pixels")

// checkPicture refuses a picture larger than the camera's max_picture_pixels
// before anything is allocated for it: a camera announcing 8192x8192 with
// tiny frames would make the decoder take hundreds of megabytes.
func (s *Stream) checkPicture(width, height int) error {
	limit := s.cfg.MaxPicturePixels
	if pixels := int64(width) * int64(height); pixels > limit {
		return withReason(ReasonProtocol, fmt.Errorf("picture %dx%d (%.1f MP) %w %d",
			width, height, float64(pixels)/1e6, errPictureTooLarge, limit))
	}
	return nil
}

// enqueue hands a frame to the full decoder. Needs mu.
func (s *Stream) enqueue(ctx context.Context, codec video.Codec, au, key, params [][]byte, hash, session uint64) {
	if s.queue == nil {
		s.queue = make(chan queuedFrame, decodeQueueFrames)
		go s.decodeLoop(ctx, s.queue)
	}
	// Decoding can start or resume at a key frame, or anywhere in a stream
	// without key frames.
	frame := queuedFrame{codec: codec, au: key, resume: key != nil || s.intraRefresh, key: key != nil, params: params,
		hash: hash, session: session}
	if s.dropUntilKey && !frame.resume {
		return
	}
	s.dropUntilKey = false
	if key == nil {
		frame.au = cloneAU(au)
	}
	select {
	case s.queue <- frame:
	default:
		// The decoder fell behind: references are lost, so wait for a key frame.
		s.dropUntilKey = true
	}
}

func cloneAU(au [][]byte) [][]byte {
	out := make([][]byte, len(au))
	for i, nalu := range au {
		out[i] = append([]byte(nil), nalu...)
	}
	return out
}

// decodeLoop decodes every queued frame so Analyze finds the newest
// picture, until queue is closed or ctx ends.
func (s *Stream) decodeLoop(ctx context.Context, queue <-chan queuedFrame) {
	waitKey := true
	// Until a frame decodes, the decoder warms up on a stream joined
	// mid-GOP: frames without their references or parameter sets fail
	// through no fault of the camera's. A key frame has all it needs.
	warm := false
	var session uint64
	for {
		select {
		case <-ctx.Done():
			return
		case frame, ok := <-queue:
			if !ok {
				return
			}
			if frame.session != session { // a fresh decoder joins the new session
				session, waitKey, warm = frame.session, true, false
			}
			if waitKey {
				if !frame.resume {
					continue
				}
				frame.au = append(slices.Clip(frame.params), frame.au...)
			}
			err := s.decodeFrame(frame)
			switch {
			case err == nil:
				warm = true
			case errors.Is(err, ErrStopped):
				return
			case errors.Is(err, errPictureTooLarge): // the session ends at its next access unit
			case warm || frame.key:
				s.decodeErrors.Add(1)
				s.logger.Debug("Decoding frame failed, waiting for the next key frame", "err", s.redact(err))
			}
			waitKey = err != nil
		}
	}
}

// decodeFrame decodes a frame; after an error the next frames must wait
// for a key frame, or a recovery point.
func (s *Stream) decodeFrame(frame queuedFrame) error {
	s.analysisMu.Lock()
	defer s.analysisMu.Unlock()
	if s.stopped {
		return ErrStopped
	}
	if refused := s.decodedTooLarge.Load(); refused != nil {
		return *refused // frames queued before the session ends: not one more picture
	}
	dec, err := s.decoderFor(frame.codec, frame.session)
	if err != nil {
		return err
	}
	err = dec.Decode(frame.au)
	// At every frame, not at scrapes only: a stream decoded in full would
	// be decoded at its full size and rate between them.
	if width, height := dec.PictureSize(); width > 0 && [2]int{width, height} != s.decoderChecked {
		if sizeErr := s.checkDecodedSize(width, height, frame.session); sizeErr != nil {
			return sizeErr
		}
		s.decoderChecked = [2]int{width, height}
	}
	if err != nil {
		return err
	}
	s.pictureSeq++
	s.pictureHash, s.pictureKey = frame.hash, dec.KeyPicture()
	return nil
}

// redact removes the camera's credentials from an error message: RTSP
// libraries may quote the URL they dialed.
func (s *Stream) redact(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	user, pass := s.cfg.Credentials()
	if pass == "" {
		return msg
	}
	for _, secret := range []string{url.UserPassword(user, pass).String(), pass, url.QueryEscape(pass)} {
		msg = strings.ReplaceAll(msg, secret, "<secret>")
	}
	return msg
}

// fitSnapshot is the size of a width x height picture shrunk, never
// enlarged, to fit a side x side square: a legal picture of absurd
// proportions (16x16384) must not keep a snapshot as tall as itself.
func fitSnapshot(width, height, side int) (w, h int) {
	scale := min(1, float64(side)/float64(max(width, height)))
	return max(int(float64(width)*scale), 1), max(int(float64(height)*scale), 1)
}
