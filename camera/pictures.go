package camera

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/imagestats"
	"github.com/camera-exporter/camera_exporter/video"
)

// noKeyframeTimeouts is how many camera timeouts without a key frame make
// a stream without recovery point SEI count as intra refresh: cameras with
// a long GOP send a key frame every 10 to 20 s, more than one timeout.
const noKeyframeTimeouts = 3

// decodeQueueFrames bounds the frames waiting for the full decoder; beyond
// it frames are dropped until the next key frame.
const decodeQueueFrames = 32

// pictures keeps a camera's pictures: the latest key frame, intra refresh
// detection, the queue to the full decoder and that decoder, the analyses
// of key frames on borrowed decoders, snapshots, and the check of decoded
// sizes against max_picture_pixels. The session tells it of each new
// session (newSession) and hands it each access unit (received).
//
// Locking: each field is guarded by the nearest mutex declared above it;
// those above the first are set by newPictures, or atomic. mu is held for
// moments only, by the session's reader among others, never while
// decoding; analysisMu is held through decoding, and taken before mu
// where both are.
type pictures struct {
	cfg      config.Camera
	decoders *DecoderPool
	logger   *slog.Logger
	// snapshotWidth, when above 0, makes analyses return a picture at
	// most this wide and this tall, for the operator pages.
	snapshotWidth int

	decodeErrors atomic.Uint64 // of the frames the decoders failed on
	// decodedTooLarge is the error of a picture of this session that the
	// decoder made larger than max_picture_pixels, which ends the session
	// at its next access unit whatever its parameter sets say.
	decodedTooLarge atomic.Pointer[error]

	mu            sync.Mutex
	keyframeAU    [][]byte         // latest key frame, parameter sets included
	keyframeSeq   uint64           // counts stored key frames, to skip decoding one twice
	keyframeHash  uint64           // of the latest key frame's coded picture
	keyframeCodec video.Codec      // of the latest key frame
	firstPicture  time.Time        // of this session
	lastKey       time.Time        // this session's latest key frame
	keyGap        time.Duration    // the longest wait for a key frame seen
	decodeAll     bool             // every frame is decoded: configured, or for intra refresh
	intraRefresh  bool             // no key frames: decoding may resume at any frame
	queue         chan queuedFrame // to the full decoder, when decodeAll
	dropUntilKey  bool             // the queue overflowed: skip to the next key frame
	// sessionSeq counts sessions: a picture's size counts for the session
	// its access unit came in only.
	sessionSeq uint64
	// The size of the latest picture decoded of this session within
	// max_picture_pixels: the size where the parameter sets do not tell
	// it (an SPS beyond reading).
	decodedWidth, decodedHeight int

	analysisMu sync.Mutex // serializes decoder use
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

func newPictures(cfg config.Camera, decoders *DecoderPool, logger *slog.Logger, snapshotWidth int) *pictures {
	return &pictures{
		cfg:           cfg,
		decoders:      decoders,
		logger:        logger,
		snapshotWidth: snapshotWidth,
		decodeAll:     cfg.Decode == config.DecodeAll,
	}
}

// newSession starts keeping the pictures of a new session: the last
// session's key frame may be of another codec, and its pictures' size
// tells nothing of this one's. It reports whether the session's frames
// are all decoded.
func (p *pictures) newSession() (decodeAll bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sessionSeq++
	p.decodedWidth, p.decodedHeight = 0, 0
	p.decodedTooLarge.Store(nil)
	p.keyframeAU = nil
	p.firstPicture, p.lastKey = time.Time{}, time.Time{}
	return p.decodeAll
}

// refused is the error of a picture of this session that the decoder made
// larger than max_picture_pixels, nil if none was.
func (p *pictures) refused() error {
	if err := p.decodedTooLarge.Load(); err != nil {
		return *err
	}
	return nil
}

// decodedSize is the size of the latest picture of this session decoded
// within max_picture_pixels, 0 before one.
func (p *pictures) decodedSize() (width, height int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.decodedWidth, p.decodedHeight
}

// received takes an access unit of the session from its reader goroutine:
// a picture (no SEI or parameter sets alone, none damaged), and key, the
// key frame it is with its parameter sets, or nil. It keeps the key
// frame, tells intra refresh, queues frames for the full decoder, and
// reports whether every frame is decoded now.
func (p *pictures) received(ctx context.Context, tr track, au, key [][]byte, picture, damaged bool, now time.Time) (decodeAll bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if picture && p.firstPicture.IsZero() {
		p.firstPicture = now
	}
	if key != nil {
		p.keyframeAU = key
		p.keyframeSeq++
		p.keyframeHash = tr.pictureHash(key)
		p.keyframeCodec = tr.codec()
		p.keyframeCame(now)
	} else if !p.intraRefresh {
		// Parsing SEI of every frame is wasted once a key frame came: only
		// a recovery point before the first one tells intra refresh.
		p.detectIntraRefresh(now, p.lastKey.IsZero() && tr.recoveryPoint(au))
	}
	if p.decodeAll && damaged {
		p.dropUntilKey = true // the frames after it refer to its picture
	}
	// libavcodec fails on an access unit without a picture ("no frame"),
	// and the track keeps its parameter sets for the frames that need them.
	if p.decodeAll && picture {
		var params [][]byte
		if key == nil && p.intraRefresh {
			params = tr.paramSets()
		}
		p.enqueue(ctx, tr.codec(), au, key, params, tr.pictureHash(au), p.sessionSeq)
	}
	return p.decodeAll
}

// ready reports whether a picture to analyze has arrived: a key frame, or,
// when every frame is decoded, any frame (framesCame).
func (p *pictures) ready(framesCame bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.keyframeAU != nil || p.decodeAll && framesCame
}

// decodesAll reports whether the stream decodes every frame now.
func (p *pictures) decodesAll() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.decodeAll
}

// stop frees the decoder, once the session ended: analyses return
// ErrStopped from now on.
func (p *pictures) stop() {
	p.analysisMu.Lock()
	defer p.analysisMu.Unlock()
	p.stopped = true
	if p.decoder != nil {
		p.decoder.Close()
		p.decoder = nil
	}
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

// analyze is Stream.Analyze.
func (p *pictures) analyze(size func(srcW, srcH int) (width, height int)) (Frame, error) {
	p.analysisMu.Lock()
	defer p.analysisMu.Unlock()
	if p.stopped {
		return Frame{}, ErrStopped
	}
	p.mu.Lock()
	decodeAll := p.decodeAll
	key := keyframe{au: p.keyframeAU, seq: p.keyframeSeq, hash: p.keyframeHash, codec: p.keyframeCodec, session: p.sessionSeq}
	p.mu.Unlock()

	var dec Decoder // holds the latest picture, once decoded or borrowed
	var stats imagestats.Stats
	if decodeAll {
		if p.decoder == nil {
			return Frame{}, video.ErrNoPicture
		}
		dec = p.decoder
		var err error
		if stats, err = dec.Analyze(*p.cfg.DarkThreshold); err != nil {
			return Frame{}, err
		}
		if err := p.checkDecodedSize(stats.Width, stats.Height, p.decoderSession); err != nil {
			return Frame{}, err
		}
	} else {
		if key.au == nil {
			return Frame{}, video.ErrNoPicture
		}
		if key.seq != p.analyzedSeq {
			borrowed, err := p.decoders.get(key.codec)
			if err != nil {
				return Frame{}, err
			}
			defer p.decoders.put(key.codec, borrowed)
			p.lastStats, p.lastErr = p.decodeKeyframe(borrowed, key)
			if p.lastErr == nil {
				p.lastErr = p.checkDecodedSize(p.lastStats.Width, p.lastStats.Height, key.session)
			}
			p.analyzedSeq = key.seq
			dec = borrowed
		}
		if p.lastErr != nil {
			return Frame{}, p.lastErr
		}
		stats = p.lastStats
	}
	frame := Frame{Seq: p.pictureSeq, Stats: stats, Coded: p.pictureHash, Key: p.pictureKey}
	// Once per picture: a stream that decodes every frame is analyzed
	// from its decoder's latest picture, again and again while no new one
	// came.
	if p.snapshotWidth > 0 && dec != nil && stats.Width > 0 && frame.Seq != p.snapshotSeq {
		w, h := fitSnapshot(stats.Width, stats.Height, p.snapshotWidth)
		snap, err := dec.Picture(w, h)
		if err != nil {
			return Frame{}, fmt.Errorf("converting picture for the snapshot: %w", err)
		}
		frame.Snapshot, p.snapshotSeq = snap, frame.Seq
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
		borrowed, err := p.decoders.get(key.codec)
		if err != nil {
			return Frame{}, err
		}
		defer p.decoders.put(key.codec, borrowed)
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
func (p *pictures) checkDecodedSize(width, height int, session uint64) error {
	err := checkPicture(p.cfg.MaxPicturePixels, width, height)
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case session != p.sessionSeq:
	case err != nil:
		p.decodedTooLarge.Store(&err)
	default:
		p.decodedWidth, p.decodedHeight = width, height
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
func (p *pictures) decodeKeyframe(dec Decoder, key keyframe) (imagestats.Stats, error) {
	if err := dec.DecodeKeyframe(key.au); err != nil {
		p.decodeErrors.Add(1)
		return imagestats.Stats{}, fmt.Errorf("decoding key frame: %w", err)
	}
	p.pictureSeq++
	p.pictureHash, p.pictureKey = key.hash, true
	return dec.Analyze(*p.cfg.DarkThreshold)
}

// decoderFor returns the stream's own decoder for the frames of a session
// in codec, which decodes every frame, replacing the one of another
// session: its latest picture, and its size, are the camera's before it
// reconnected, maybe in another codec or size. Needs analysisMu.
func (p *pictures) decoderFor(codec video.Codec, session uint64) (Decoder, error) {
	if p.decoder != nil && p.decoderSession == session { // a session has one codec
		return p.decoder, nil
	}
	if p.decoder != nil {
		p.decoder.Close()
		p.decoder = nil
	}
	dec, err := p.decoders.newDecoder(codec)
	if err != nil {
		return nil, err
	}
	p.decoder, p.decoderSession, p.decoderChecked = dec, session, [2]int{}
	return dec, nil
}

// detectIntraRefresh tells an intra-refresh stream, which only decoding
// every frame recovers pictures of, from one with a long GOP, whose key
// frames are enough: a recovery point before any key frame of the session,
// or no key frame for several timeouts, or twice the longest wait seen
// before, so that a GOP longer than those timeouts switches once, not once
// per GOP. Needs mu.
func (p *pictures) detectIntraRefresh(now time.Time, recoveryPoint bool) {
	since := p.lastKey
	if since.IsZero() {
		since = p.firstPicture
	}
	if since.IsZero() {
		return
	}
	span := max(noKeyframeTimeouts*time.Duration(p.cfg.Timeout), 2*p.keyGap)
	var evidence string
	switch {
	case recoveryPoint && p.lastKey.IsZero():
		evidence = "recovery point SEI"
	case now.Sub(since) > span:
		evidence = "no key frame for " + span.String()
	default:
		return
	}
	p.intraRefresh, p.decodeAll = true, true
	p.logger.Info("Intra refresh, decoding every frame", "evidence", evidence)
}

// keyframeCame leaves intra refresh mode, and the automatic decoding of
// every frame with it: a camera that sends key frames again is decoded at
// its key frames only. Needs mu.
func (p *pictures) keyframeCame(now time.Time) {
	since := p.lastKey
	if since.IsZero() {
		since = p.firstPicture
	}
	p.keyGap = max(p.keyGap, now.Sub(since))
	p.lastKey = now
	if !p.intraRefresh {
		return
	}
	p.intraRefresh = false
	if p.cfg.Decode == config.DecodeAll {
		return
	}
	p.decodeAll = false
	if p.queue != nil {
		close(p.queue) // ends the decode goroutine
		p.queue, p.dropUntilKey = nil, false
	}
	p.logger.Info("Key frames again, back to decoding key frames only")
}

// errPictureTooLarge is the error of a picture beyond max_picture_pixels.
var errPictureTooLarge = errors.New("exceeds max_picture_pixels")

// checkPicture refuses a picture larger than the camera's max_picture_pixels
// before anything is allocated for it: a camera announcing 8192x8192 with
// tiny frames would make the decoder take hundreds of megabytes.
func checkPicture(limit int64, width, height int) error {
	if pixels := int64(width) * int64(height); pixels > limit {
		return withReason(ReasonProtocol, fmt.Errorf("picture %dx%d (%.1f MP) %w %d",
			width, height, float64(pixels)/1e6, errPictureTooLarge, limit))
	}
	return nil
}

// enqueue hands a frame to the full decoder. Needs mu.
func (p *pictures) enqueue(ctx context.Context, codec video.Codec, au, key, params [][]byte, hash, session uint64) {
	if p.queue == nil {
		p.queue = make(chan queuedFrame, decodeQueueFrames)
		go p.decodeLoop(ctx, p.queue)
	}
	// Decoding can start or resume at a key frame, or anywhere in a stream
	// without key frames.
	frame := queuedFrame{codec: codec, au: key, resume: key != nil || p.intraRefresh, key: key != nil, params: params,
		hash: hash, session: session}
	if p.dropUntilKey && !frame.resume {
		return
	}
	p.dropUntilKey = false
	if key == nil {
		frame.au = cloneAU(au)
	}
	select {
	case p.queue <- frame:
	default:
		// The decoder fell behind: references are lost, so wait for a key frame.
		p.dropUntilKey = true
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
func (p *pictures) decodeLoop(ctx context.Context, queue <-chan queuedFrame) {
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
			err := p.decodeFrame(frame)
			switch {
			case err == nil:
				warm = true
			case errors.Is(err, ErrStopped):
				return
			case errors.Is(err, errPictureTooLarge): // the session ends at its next access unit
			case warm || frame.key:
				p.decodeErrors.Add(1)
				p.logger.Debug("Decoding frame failed, waiting for the next key frame", "err", redact(p.cfg, err))
			}
			waitKey = err != nil
		}
	}
}

// decodeFrame decodes a frame; after an error the next frames must wait
// for a key frame, or a recovery point.
func (p *pictures) decodeFrame(frame queuedFrame) error {
	p.analysisMu.Lock()
	defer p.analysisMu.Unlock()
	if p.stopped {
		return ErrStopped
	}
	if refused := p.decodedTooLarge.Load(); refused != nil {
		return *refused // frames queued before the session ends: not one more picture
	}
	dec, err := p.decoderFor(frame.codec, frame.session)
	if err != nil {
		return err
	}
	err = dec.Decode(frame.au)
	// At every frame, not at scrapes only: a stream decoded in full would
	// be decoded at its full size and rate between them.
	if width, height := dec.PictureSize(); width > 0 && [2]int{width, height} != p.decoderChecked {
		if sizeErr := p.checkDecodedSize(width, height, frame.session); sizeErr != nil {
			return sizeErr
		}
		p.decoderChecked = [2]int{width, height}
	}
	if err != nil {
		return err
	}
	p.pictureSeq++
	p.pictureHash, p.pictureKey = frame.hash, dec.KeyPicture()
	return nil
}

// fitSnapshot is the size of a width x height picture shrunk, never
// enlarged, to fit a side x side square: a legal picture of absurd
// proportions (16x16384) must not keep a snapshot as tall as itself.
func fitSnapshot(width, height, side int) (w, h int) {
	scale := min(1, float64(side)/float64(max(width, height)))
	return max(int(float64(width)*scale), 1), max(int(float64(height)*scale), 1)
}
