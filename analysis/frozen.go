package analysis

import (
	"math"
	"math/bits"
	"slices"
	"time"

	"github.com/camera-exporter/camera_exporter/config"
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
// few blocks in place again and again, and cameras draw theirs at the
// picture's top or bottom edge: only the overlayEdgeRows block rows there
// are learned, so that a worker at a bench, a flag or a screen elsewhere is
// never taken for one, nor anywhere else than in the regions a camera's
// frozen_overlay names. A block there is learned as overlay once it changed
// from one picture to the next in overlayChanges of its latest
// overlayPairs picture pairs, its changes having begun overlayFloor
// before at least: a quarter of its pictures, not a rate, so that it holds for a picture a
// second and a picture a minute alike, for a clock whose seconds alias
// with the scrapes and an icon that blinks out of step with them, while
// what crosses an edge row in less time is not learned. It is forgotten
// once it did not change in overlayPairs pairs. A block beside an
// overlay's in its row is the overlay's too where it changed only in the
// pictures its neighbour changed in: a clock's tens of seconds and
// minutes, too seldom to be learned alone.
const (
	overlayEdgeRows = 2
	overlayPairs    = 16
	overlayChanges  = 4
	overlayFloor    = 20 * time.Second
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
		f.diff = math.Inf(1)
		var changedIn [drift.StillBlocks]int // how many recent pictures a block changed against
		var sinceLatest, sinceSimilar [drift.StillBlocks]bool
		for _, prev := range f.recent {
			s, _ := drift.CompareStill(prev, sig)
			// NaN, never still, for a decoder that gives no signature.
			if s.Difference < f.diff || math.IsInf(f.diff, 1) {
				f.diff, sinceSimilar = s.Difference, s.Changed
			}
			for b, c := range s.Changed {
				if c {
					changedIn[b]++
				}
			}
			sinceLatest = s.Changed
		}
		// Learning from one picture to the next, a change counts once,
		// not for as long as the recent pictures hold what was there
		// before.
		f.overlay.learn(now, &sinceLatest)
		// A block changed against one odd picture only, of another
		// quality of x264 and x265 rate control, is no motion: against
		// every recent picture, not only the most similar, since a slow
		// walker hardly moves from one picture to the next.
		var changed [drift.StillBlocks]bool
		for b, n := range changedIn {
			changed[b] = n >= 2 || sinceLatest[b] && sinceSimilar[b]
		}
		switch {
		case resent:
			// The camera sent the very picture again: frozen outright.
			f.diff, f.still = 0, max(f.still+1, stillFramesFrozen)
		case f.overlay.motion(&changed):
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
	changes [drift.StillBlocks]uint32    // bit i: the block changed in the i-th latest of overlayPairs picture pairs
	began   [drift.StillBlocks]time.Time // when its changes began
	learned [drift.StillBlocks]bool
	// configured tells the blocks of the regions the configuration names,
	// besides the edge rows, where the camera draws an overlay.
	configured [drift.StillBlocks]bool
}

// configure adds the blocks whose centres lie in regions to those learned.
func (o *overlayLearner) configure(regions []config.Region) {
	const rows = drift.StillBlocks / drift.StillColumns
	for b := range o.configured {
		x := (float64(b%drift.StillColumns) + 0.5) / drift.StillColumns
		y := (float64(b/drift.StillColumns) + 0.5) / rows
		o.configured[b] = slices.ContainsFunc(regions, func(g config.Region) bool {
			return g.Left <= x && x < g.Right && g.Top <= y && y < g.Bottom
		})
	}
}

// learnable reports whether block b may be learned as overlay.
func (o *overlayLearner) learnable(b int) bool {
	const rows = drift.StillBlocks / drift.StillColumns
	row := b / drift.StillColumns
	return row < overlayEdgeRows || row >= rows-overlayEdgeRows || o.configured[b]
}

// learn takes the blocks that a picture at now changed since the
// camera's latest.
func (o *overlayLearner) learn(now time.Time, sinceLatest *[drift.StillBlocks]bool) {
	for b, c := range sinceLatest {
		if c && o.changes[b] == 0 {
			o.began[b] = now
		}
		o.changes[b] = o.changes[b] << 1 & (1<<overlayPairs - 1)
		if c {
			o.changes[b] |= 1
		}
		switch {
		case o.changes[b] == 0:
			o.learned[b] = false
		case o.learnable(b) && bits.OnesCount32(o.changes[b]) >= overlayChanges && now.Sub(o.began[b]) >= overlayFloor:
			o.learned[b] = true
		}
	}
}

// motion reports whether any changed block is not the overlay's, or more
// blocks changed than an overlay covers.
func (o *overlayLearner) motion(changed *[drift.StillBlocks]bool) bool {
	overlay := o.learned
	// Out from each learned block along its row, both ways: a clock's
	// minutes changed in the pictures its tens of seconds did, which
	// changed in those its seconds did.
	for b := range overlay {
		if b%drift.StillColumns > 0 && overlay[b-1] && o.coincides(b, b-1) {
			overlay[b] = true
		}
	}
	for b := len(overlay) - 1; b >= 0; b-- {
		if b%drift.StillColumns < drift.StillColumns-1 && overlay[b+1] && o.coincides(b, b+1) {
			overlay[b] = true
		}
	}
	var n int
	for b, c := range changed {
		if !c {
			continue
		}
		if !overlay[b] {
			return true
		}
		n++
	}
	return n > drift.TrimmedBlocks
}

// coincides reports whether block b, learnable, changed in the latest
// overlayPairs pairs only in pictures that block n changed in too.
func (o *overlayLearner) coincides(b, n int) bool {
	return o.learnable(b) && o.changes[b] != 0 && o.changes[b]&^o.changes[n] == 0
}
