package drift

import "math"

// flatSignature is the standard deviation, on the 0 to 1 scale, below which
// a signature is flat: a covered lens, a blank picture. Its correlation with
// anything is then noise, not the view. Two levels of 255: about what the
// noise and rounding of a covered lens leave, while a dim or foggy view
// still shows its structure above it.
const flatSignature = 2.0 / 255

// SceneChange compares a frame's signature with the reference's, ref on
// the 0 to 1 scale and sig in 8-bit levels. The score is 1 minus their
// Pearson correlation, halved to range from 0 to 1: 0 for the same view,
// about 0.5 for an unrelated one, 1 for its negative. The correlation
// compares the pictures after taking out their means and scaling them to
// the same variance, so that a change of brightness or contrast (dusk,
// exposure, fog) is not a change of scene. ok is false when either
// signature is missing, when their sizes differ, or for a flat picture.
func SceneChange(ref []float32, sig []uint8) (score float64, ok bool) {
	if len(ref) == 0 || len(ref) != len(sig) {
		return 0, false
	}
	// The signature's sums are kept in levels, in integers, and scaled
	// once: a division per value would double the time.
	var sr, srr, srs float64
	var ss, sss int
	for i, r := range ref {
		r, s := float64(r), sig[i]
		sr += r
		srr += r * r
		srs += r * float64(s)
		ss += int(s)
		sss += int(s) * int(s)
	}
	n := float64(len(ref))
	mr, ms := sr/n, float64(ss)/n/255
	vr := srr/n - mr*mr
	vs := float64(sss)/n/(255*255) - ms*ms
	if vr < flatSignature*flatSignature || vs < flatSignature*flatSignature {
		return 0, false
	}
	corr := (srs/n/255 - mr*ms) / math.Sqrt(vr*vs)
	return min(max((1-corr)/2, 0), 1), true
}
