package camera

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/imagestats"
	"github.com/camera-exporter/camera_exporter/video"
)

// Stream keeps one camera's RTSP session alive, retrying forever with
// exponential backoff, and serves its status and analysis at scrape time:
// its session receives, its pictures keep and decode what came. Each
// states its own locking; Stream's fields are set by newStream.
type Stream struct {
	cfg      config.Camera
	cancel   context.CancelFunc
	done     chan struct{}
	session  *session
	pictures *pictures
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
	logger = logger.With("camera", cfg.Name)
	pics := newPictures(cfg, decoders, logger, opts.snapshotWidth)
	s := &Stream{
		cfg:      cfg,
		cancel:   cancel,
		done:     make(chan struct{}),
		session:  &session{cfg: cfg, logger: logger, pictures: pics, allowDial: opts.allowDial},
		pictures: pics,
	}
	go func() {
		defer close(s.done)
		s.session.run(ctx)
	}()
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
	s.pictures.stop()
}

// ErrStopped is returned by Analyze once the stream was stopped.
var ErrStopped = errors.New("camera stream stopped")

// Status returns the stream's counters and session state.
func (s *Stream) Status() Status {
	st := s.session.status()
	st.DecodeErrors += s.pictures.decodeErrors.Load()
	return st
}

// Ready reports whether a picture to analyze has arrived: a key frame, or,
// when every frame is decoded, any frame.
func (s *Stream) Ready() bool { return s.pictures.ready(s.session.frames.Load() > 0) }

// Up reports whether the session is up and a frame arrived within the
// camera's timeout.
func (s *Stream) Up(now time.Time) bool {
	last := s.session.lastFrame.Load()
	return s.session.connected.Load() && last != 0 && now.Sub(time.Unix(0, last)) < time.Duration(s.cfg.Timeout)
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
	return s.pictures.analyze(size)
}
