package drift

import (
	"math"
	"slices"

	"github.com/camera-exporter/camera_exporter/imagestats"
)

// The blocks of CompareStill: 8x9 signature values, a 20x10 grid of a
// 160x90 signature; at 1080p a block spans 96x108 pixels.
const (
	stillBlockWidth  = 8
	stillBlockHeight = 9
	stillRows        = imagestats.SignatureHeight / stillBlockHeight
)

// StillBlocks is how many blocks CompareStill tells changed or not, row by
// row of StillColumns.
const (
	StillBlocks  = StillColumns * stillRows
	StillColumns = imagestats.SignatureWidth / stillBlockWidth
)

// stillTrimmed is the share of blocks, those that changed most, that
// CompareStill's Difference leaves out: a clock or a date drawn over a frozen
// picture changes 2 to 4 of 200 blocks, a name or a logo does not change.
const stillTrimmed = 0.1

// TrimmedBlocks is how many blocks CompareStill's Difference leaves out,
// the most an overlay may cover.
const TrimmedBlocks = int(stillTrimmed * StillBlocks)

// StillLimit is the Difference of CompareStill below which two pictures of one camera
// are the same picture: re-encoded, as a stuck camera pipeline keeps doing,
// or decoded again.
//
// Measured by TestFrozen through the exporter (person.jpg, 640x424, 10
// fps, key frames compared): sensor noise of standard deviation 1 level
// added before encoding leaves 0.30 to 0.35 level, 2 levels 0.55, 3 levels
// 0.81; this is the noise averaged over the 19 pixels of a signature value,
// so larger pictures leave less of it. Re-encoding a still picture leaves
// at most 0.19 level with x264 and x265 where key frames get 5 bits per
// pixel or more (6 Mbit/s, a key frame every 0.2 s); coarser coding erases
// the noise and differs by as much itself: 0.29 at 4 bits per pixel per
// key frame, 1 level at 1.3.
const StillLimit = 0.25 / 255

// Thresholds of a changed block: its mean absolute difference must exceed
// changedBlockFloor, and changedBlockFactor times the median block's, the
// picture's coding noise. Re-encoding a still picture (x264 and x265 at
// their default quality and at 6 Mbit/s, 640x424 and 768x576) leaves at
// most 0.9 level in any block where the median block differs by 0.5; a
// 12x30 pixel figure that moved half its width in a 768x576 picture
// changes its block by 1.6 levels or more, a 24x60 one by 3 or more.
const (
	changedBlockFloor  = 1.0 / 255
	changedBlockFactor = 3
)

// StillComparison is how two signatures of one camera differ.
type StillComparison struct {
	// Difference is the mean absolute difference over blocks, 0 to 1,
	// leaving out the tenth of blocks that changed most, so that an
	// overlay's clock, or anything as small that moved, does not count.
	Difference float64
	// Changed tells the blocks, row by row of StillColumns, whose
	// difference stands out of the picture's coding noise: something moved
	// or changed there.
	Changed [StillBlocks]bool
	// LargestChange is the largest block's difference over the threshold
	// of a changed block: above 1 it changed, and below, how far from it
	// the coding noise of a still picture stays.
	LargestChange float64
}

// CompareStill compares two signatures for a frozen stream; ok is false,
// and the Difference NaN, when a signature is missing or not of
// imagestats.SignatureWidth x imagestats.SignatureHeight.
func CompareStill(a, b []uint8) (s StillComparison, ok bool) {
	const (
		w, h  = imagestats.SignatureWidth, imagestats.SignatureHeight
		block = stillBlockWidth * stillBlockHeight
	)
	if len(a) != w*h || len(b) != w*h {
		return StillComparison{Difference: math.NaN()}, false
	}
	var blocks [StillBlocks]int
	for y := range stillRows * stillBlockHeight {
		ra, rb := a[y*w:][:w], b[y*w:][:w]
		row := blocks[y/stillBlockHeight*StillColumns:][:StillColumns]
		for c := range row {
			var d int
			for x := c * stillBlockWidth; x < (c+1)*stillBlockWidth; x++ {
				v := int(ra[x]) - int(rb[x])
				d += max(v, -v)
			}
			row[c] += d
		}
	}
	sorted := blocks
	slices.Sort(sorted[:])
	kept := sorted[:StillBlocks-TrimmedBlocks]
	var sum int
	for _, d := range kept {
		sum += d
	}
	s.Difference = float64(sum) / float64(len(kept)*block) / 255
	limit := max(changedBlockFloor*255*block, changedBlockFactor*float64(sorted[StillBlocks/2]))
	for i, d := range blocks {
		s.Changed[i] = float64(d) > limit
	}
	s.LargestChange = float64(sorted[StillBlocks-1]) / limit
	return s, true
}
