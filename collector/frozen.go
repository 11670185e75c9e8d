package collector

import (
	"math"
	"time"

	"github.com/camera-exporter/camera_exporter/drift"
)

// stillFramesFrozen is how many distinct pictures in a row must repeat an
// earlier one for the camera to count as frozen: once could be a still
// scene whose noise the encoder happened to smooth away.
const stillFramesFrozen = 2

// frozenWindow is how many of the camera's latest distinct pictures a new
// one is compared with. The rate control of x264 and x265 alternates among
// a few qualities of a frozen picture, and one of them comes back within a
// few key frames, exactly or nearly, where the previous picture may be of
// another quality.
const frozenWindow = 8

// An overlay, a clock or a date drawn over the picture, changes the same
// few blocks in place again and again; a moving object changes the blocks
// it passes. A block is learned as overlay once it changed from one
// picture to the next in overlayPictures pictures, over overlayLearning at
// least: longer than an object takes to cross a block, a twentieth of the
// picture's width or a tenth of its height, down to 2 pixels per second at
// 768x576; and where pictures come seconds apart, more than a few
// pictures that caught someone in the same place. Its changes may pause
// for a picture, or for overlayGap: a clock's tens of seconds change every
// 10 s. A block beside an overlay's in its row is the overlay's once that
// changed for overlayBeside: a clock's tens of seconds and its minutes
// change beside its seconds, too seldom to be learned in minutes, and what
// crosses a block in less time (2 pixels a second at 768x576) is no
// overlay.
const (
	overlayPictures = 9
	overlayLearning = 20 * time.Second
	overlayGap      = 12 * time.Second
	overlayBeside   = 30 * time.Second
)

// frozenDetector tells, from a camera's successive distinct pictures,
// whether its stream repeats one picture while frames keep arriving: the
// same coded picture sent again, or the same picture re-encoded, whose
// differences stay below those of a live view's sensor noise and leave no
// block changed but those of its overlay.
type frozenDetector struct {
	seen    bool
	keyed   bool // key pictures came: only they are compared
	seq     uint64
	coded   uint64
	recent  [][]uint8 // signatures of the latest distinct pictures, oldest first
	diff    float64   // of the latest picture to the most similar of recent
	still   int       // distinct pictures in a row that repeated an earlier one
	overlay overlayLearner
}

// observe takes an analyzed picture at now and reports whether it is a
// new one: seq identifies the picture, coded hashes its coded form (0 if
// unknown), key tells a key frame's picture and sig is its signature.
//
// An inter-coded picture copies its references where little changed, so
// the P-frames of a live still scene, decoded with `decode: all`, can
// repeat their key frame's picture to within quantization, its sensor
// noise skipped by the encoder. Once the stream sent key frames, only
// theirs, each coded from the sensor afresh, are compared; a stream
// without any (intra refresh) has every picture compared.
func (f *frozenDetector) observe(now time.Time, seq, coded uint64, key bool, sig []uint8) bool {
	if f.seen && seq == f.seq {
		return false
	}
	resent := coded != 0 && coded == f.coded
	f.keyed = f.keyed || key
	if f.keyed && !key && !resent {
		f.seen, f.seq, f.coded = true, seq, coded
		return true
	}
	if f.seen {
		// Against every recent picture, not only the most similar: a
		// slow walker hardly moves from one picture to the next.
		f.diff = math.Inf(1)
		var changed, sinceLatest [drift.StillBlocks]bool
		for _, prev := range f.recent {
			s, _ := drift.CompareStill(prev, sig)
			// NaN, never still, for a decoder that gives no signature.
			f.diff = min(f.diff, s.Difference)
			for b, c := range s.Changed {
				changed[b] = changed[b] || c
			}
			sinceLatest = s.Changed
		}
		switch {
		case resent:
			// The camera sent the very picture again: frozen outright.
			f.diff, f.still = 0, max(f.still+1, stillFramesFrozen)
		case f.overlay.moved(now, &sinceLatest, &changed):
			f.still = 0
		case f.diff < drift.StillLimit:
			f.still++
		default:
			f.still = 0
		}
	}
	f.seen, f.seq, f.coded = true, seq, coded
	if len(f.recent) == frozenWindow {
		f.recent = append(f.recent[:0], f.recent[1:]...)
	}
	f.recent = append(f.recent, sig)
	return true
}

// difference is how much the latest picture differs, as
// drift.CompareStill's Difference, from the most similar of the pictures
// before it; ok is false before two pictures or without signatures.
func (f *frozenDetector) difference() (diff float64, ok bool) {
	return f.diff, len(f.recent) > 1 && !math.IsNaN(f.diff)
}

// frozen reports whether the camera's stream is frozen; ok is false before
// its first picture.
func (f *frozenDetector) frozen() (frozen, ok bool) {
	return f.still >= stillFramesFrozen, f.seen
}

// overlayLearner learns which blocks of a camera's picture its overlay
// covers, from the blocks each distinct picture changed.
type overlayLearner struct {
	run    [drift.StillBlocks]int       // pictures the block changed in since its changes began, 0 if none
	since  [drift.StillBlocks]time.Time // when they began
	last   [drift.StillBlocks]time.Time // when it last changed
	missed [drift.StillBlocks]int       // pictures in a row it did not change in
}

// moved learns from the blocks a picture at now changed since the
// camera's latest, and reports whether any of those it changed against any
// recent picture is not the overlay's, or more blocks than an overlay
// covers changed in place. Learning from one picture to the next, a change
// counts once, not for as long as the recent pictures hold what was
// there before.
func (o *overlayLearner) moved(now time.Time, sinceLatest, changed *[drift.StillBlocks]bool) bool {
	for b, c := range sinceLatest {
		switch {
		case c:
			if o.run[b] == 0 {
				o.since[b] = now
			}
			o.run[b]++
			o.last[b], o.missed[b] = now, 0
		case o.run[b] > 0:
			o.missed[b]++
			if o.missed[b] > 1 && now.Sub(o.last[b]) > overlayGap {
				o.run[b], o.missed[b] = 0, 0
			}
		}
	}
	// Over the span of its changes, not up to now: a block a figure left
	// keeps its run for overlayGap.
	learned := func(b int, over time.Duration) bool {
		return o.run[b] >= overlayPictures && o.last[b].Sub(o.since[b]) >= over
	}
	var overlay int
	for b, c := range changed {
		if !c {
			continue
		}
		column := b % drift.StillColumns
		if !learned(b, overlayLearning) &&
			(column == 0 || !learned(b-1, overlayBeside)) &&
			(column == drift.StillColumns-1 || !learned(b+1, overlayBeside)) {
			return true
		}
		overlay++
	}
	return overlay > drift.OverlayBlocks
}
