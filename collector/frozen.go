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
// few blocks in place on every picture; a moving object changes the
// blocks it enters. A block is learned as overlay once it changed in more
// pictures in a row than one change stays in the window (an object that
// arrives and stays is no overlay), over overlayLearning at least: longer
// than an object takes to cross a block, a twentieth of the picture's width
// or a tenth of its height, down to 2 pixels per second at 768x576.
const (
	overlayPictures = frozenWindow + 1
	overlayLearning = 20 * time.Second
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
		var changed [drift.StillBlocks]bool
		for _, prev := range f.recent {
			s, _ := drift.CompareStill(prev, sig)
			// NaN, never still, for a decoder that gives no signature.
			f.diff = min(f.diff, s.Difference)
			for b, c := range s.Changed {
				changed[b] = changed[b] || c
			}
		}
		switch {
		case resent:
			// The camera sent the very picture again: frozen outright.
			f.diff, f.still = 0, max(f.still+1, stillFramesFrozen)
		case f.overlay.moved(now, &changed):
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
	run    [drift.StillBlocks]int       // pictures since the block's changes began, 0 if none
	since  [drift.StillBlocks]time.Time // when they began
	missed [drift.StillBlocks]bool      // the block did not change in the latest picture
}

// moved takes the blocks a picture at now changed against the camera's
// recent pictures and reports whether any of them is not the overlay's,
// or more blocks than an overlay covers changed in place.
//
// A block's run of changes survives one picture without change: a clock
// ticking each second is missed where the recent pictures all fall within
// one second of it.
func (o *overlayLearner) moved(now time.Time, changed *[drift.StillBlocks]bool) bool {
	var moved bool
	var overlay int
	for b, c := range changed {
		switch {
		case c:
			if o.run[b] == 0 {
				o.since[b] = now
			}
			o.run[b]++
			o.missed[b] = false
			if o.run[b] < overlayPictures || now.Sub(o.since[b]) < overlayLearning {
				moved = true
			} else {
				overlay++
			}
		case o.missed[b]:
			o.run[b], o.missed[b] = 0, false
		case o.run[b] > 0:
			o.missed[b] = true
		}
	}
	return moved || overlay > drift.OverlayBlocks
}
