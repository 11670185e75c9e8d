// Package imagestats holds the statistics measured on one analyzed
// picture. It is a leaf: the decoder fills them in, the collectors export
// them and the drift scores compare their distributions, and none of those
// needs the others to speak of a picture.
package imagestats

// Stats describes one analyzed picture. Luma values are on the full
// range scale (0 black, 1 white) whatever range the stream was coded in;
// colours are 0 to 1 too.
type Stats struct {
	Width, Height int
	// Brightness is the mean luma.
	Brightness float64
	// Contrast is the standard deviation of luma.
	Contrast float64
	// DarkRatio is the share of pixels whose luma is below the dark threshold.
	DarkRatio float64
	// OverexposedRatio is the share of pixels whose luma is at or above
	// OverexposedLuma: glare, a camera facing the sun.
	OverexposedRatio float64
	// Sharpness is the variance of the Laplacian of luma, on the picture
	// scaled to AnalysisWidth: 0 for a flat picture, about 0.02 for an
	// ordinary sharp view; a defocused, dirty or fogged lens lowers it (a
	// blur of 2 to 4 pixels divides it by 10 to 60).
	Sharpness float64
	// EdgeDensity is the share of edge pixels (Canny) at AnalysisWidth: a
	// covered lens or a blocked view lowers it.
	EdgeDensity float64
	// Saturation is the mean HSV saturation: 0 for gray, 1 for pure colours.
	// Night mode (infrared) pictures are gray.
	Saturation float64
	// Red, Green and Blue are the mean channel values: a colour cast sets
	// one apart.
	Red, Green, Blue float64
	// Signature is the luma scaled to SignatureWidth x SignatureHeight,
	// whatever the picture's aspect, to compare pictures of one camera: a
	// frozen stream repeats it, a moved camera's departs from its reference.
	Signature []uint8
}

// The scales of Stats.
const (
	OverexposedLuma = 0.95
	AnalysisWidth   = 320
	SignatureWidth  = 160
	SignatureHeight = 90
)
