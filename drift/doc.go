// Package drift tells how far a camera's recent pictures, and what the
// detector finds in them, have moved from a reference: data drift (the
// lens, the light, the view) and output drift (objects, confidences).
//
// # Features and reference
//
// Each analyzed frame contributes a Sample: its image statistics
// (brightness, contrast, dark and overexposed pixels, sharpness, edge
// density, saturation) and, on a detecting camera, the counted objects in
// total and per class, their confidences and whether the frame had none. A
// Profile, built by a Builder from frames the detector is known to work on
// (training images, or a camera's own stream), holds each feature's
// histogram over fixed bins (see Bins), so that a reference is a few
// hundred numbers whatever the number of frames, and scoring needs no raw
// samples. The reference should cover the conditions to expect: a daytime
// reference makes every night drift.
//
// # Measure
//
// A Window holds the frames of the recent past, an hour say, and keeps
// their histograms up to date as frames come and go, so that a score costs
// microseconds. Each feature is scored by the population stability index
// (PSI) of the window's histogram against the reference's. The usual
// reading: below 0.1 no significant change, 0.1 to 0.25 moderate, above
// 0.25 significant. PSI is symmetric (Jeffreys' divergence: the sum of the
// two Kullback-Leibler divergences), works on the histograms alone and has
// those conventional thresholds. Other tools use other distances: whylogs
// defaults to the Hellinger distance, Evidently to the normed Wasserstein
// distance with a 0.1 threshold (Kolmogorov-Smirnov for small samples),
// NannyML to Jensen-Shannon or Wasserstein; those range over 0 to 1 but
// have no agreed thresholds, and the Kolmogorov-Smirnov test needs the raw
// samples. Empty bins are smoothed by half a count, see PSI.
//
// PSI depends on sample size: n frames drawn from the reference's own
// distribution over k bins score about (k−1)/n by chance. Over the image
// features of a typical picture that is about 0.25 at 20 frames, 0.08 at
// MinSamples (60) and 0.02 at 240, an hour of 15-second scrapes: use
// windows of a few hundred frames, and let alerts wait for them to fill.
//
// The combined score is the mean PSI of the image features: a change of
// light moves several of them together (brightness, contrast, dark pixels,
// saturation when infrared night mode starts), while a single feature's
// shift is better watched through its own score, for which the maximum over
// features serves. The detector's features stay out of it, see
// Window.Scores.
//
// # Scene and frozen stream
//
// Beside the histograms, a frame's signature, its luma at 160x90, tells
// whether the camera still looks at its reference view (SceneChange, from 0
// for the same view to about 0.5 for an unrelated one) and whether the
// stream is frozen (CompareStill of a frame and the camera's latest ones:
// their Difference below StillLimit, and which blocks changed, for the
// collector to tell an overlay's from life).
//
// A View measures instead of scoring: Register tells how far the scene
// moved (in fractions of the picture), zoomed and turned from the
// reference's, and the share of the reference's structure still found at
// that place (MatchRatio: low when something covers the lens or the view,
// or when the camera looks elsewhere). It registers the signatures'
// gradients, not their luma, so that light does not read as movement, by
// phase correlation for a few candidate zooms (Fourier–Mellin's among
// them), then refines the best by robust direct alignment of the luma
// under a gain and an offset, in pure Go on the signature: about half a
// millisecond a frame, a few for a view it cannot find. A card or a hand
// over part of the lens reads as a low MatchRatio, not as movement: the
// flat pixels are left out, and a refinement that finds less of the view
// than the coarse registration did is dropped.
package drift
