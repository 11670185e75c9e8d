package drift

import (
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/camera-exporter/camera_exporter/imagestats"
)

// The features, by their stable names: label values of the drift metrics
// and keys of reference files.
const (
	FeatureBrightness        = "brightness"
	FeatureContrast          = "contrast"
	FeatureDarkPixels        = "dark_pixels"
	FeatureOverexposedPixels = "overexposed_pixels"
	FeatureSharpness         = "sharpness"
	FeatureEdgeDensity       = "edge_density"
	FeatureSaturation        = "saturation"
	// FeatureObjects is the number of counted objects in a frame.
	FeatureObjects = "objects"
	// FeatureConfidence is the confidence of each counted object.
	FeatureConfidence = "confidence"
	// FeatureEmptyOutput is 1 for a frame without counted objects, else 0.
	FeatureEmptyOutput = "empty_output"
	// FeatureClassPrefix, followed by a class name, is the number of objects
	// of that class in a frame, e.g. objects_person.
	FeatureClassPrefix = "objects_"
)

// Bin upper edges. A value falls in the first bin whose edge it does not
// exceed, as in a Prometheus histogram; values above the last edge fall in
// the last bin.
var (
	// Levels spread over the whole range.
	tenthEdges = []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1}
	// The standard deviation of values in [0,1] cannot exceed 0.5.
	contrastEdges = []float64{0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5}
	// Shares of pixels are small in most pictures (none overexposed, a
	// few percent dark, several percent edges) and what matters is how far
	// they leave that: fine bins near 0, the first for exactly 0.
	shareEdges = []float64{0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1}
	// The variance of the Laplacian spans decades: from about 1e-5 for a
	// flat picture to 1e-1 for a busy sharp one. Half-decade bins from
	// 1e-6 to 1, since defocus divides it by a factor, not a difference.
	sharpnessEdges = logEdges(-6, 0, 2)
	// Objects per frame: one by one while few, then coarser.
	objectEdges     = []float64{0, 1, 2, 3, 4, 6, 8, 12, 16, math.Inf(1)}
	emptyEdges      = []float64{0, 1}
	confidenceEdges = tenthEdges
)

// logEdges returns edges from 10^from to 10^to with perDecade per decade.
func logEdges(from, to, perDecade int) []float64 {
	var e []float64
	for i := from * perDecade; i <= to*perDecade; i++ {
		e = append(e, math.Pow(10, float64(i)/float64(perDecade)))
	}
	return e
}

// imageFeature is a feature measured on every analyzed picture.
type imageFeature struct {
	name  string
	edges []float64
	value func(*imagestats.Stats) float64
}

// imageFeatures are scored for every camera and make up the combined score.
var imageFeatures = [...]imageFeature{
	{FeatureBrightness, tenthEdges, func(s *imagestats.Stats) float64 { return s.Brightness }},
	{FeatureContrast, contrastEdges, func(s *imagestats.Stats) float64 { return s.Contrast }},
	{FeatureDarkPixels, shareEdges, func(s *imagestats.Stats) float64 { return s.DarkRatio }},
	{FeatureOverexposedPixels, shareEdges, func(s *imagestats.Stats) float64 { return s.OverexposedRatio }},
	{FeatureSharpness, sharpnessEdges, func(s *imagestats.Stats) float64 { return s.Sharpness }},
	{FeatureEdgeDensity, shareEdges, func(s *imagestats.Stats) float64 { return s.EdgeDensity }},
	{FeatureSaturation, tenthEdges, func(s *imagestats.Stats) float64 { return s.Saturation }},
}

// Bins returns the upper edges of a feature's bins, or nil for an unknown
// feature. Values above the last edge count in the last bin.
func Bins(feature string) []float64 {
	return slices.Clone(edges(feature))
}

// edges is Bins without the copy.
func edges(feature string) []float64 {
	for i := range imageFeatures {
		if imageFeatures[i].name == feature {
			return imageFeatures[i].edges
		}
	}
	switch feature {
	case FeatureObjects:
		return objectEdges
	case FeatureConfidence:
		return confidenceEdges
	case FeatureEmptyOutput:
		return emptyEdges
	}
	if class, ok := strings.CutPrefix(feature, FeatureClassPrefix); ok && class != "" {
		return objectEdges
	}
	return nil
}

// bin returns the index of the bin of v.
func bin(edges []float64, v float64) int {
	return min(sort.SearchFloat64s(edges, v), len(edges)-1)
}

// frame is what a sample contributes, as bin indexes; the Builder and the
// Window count the same things the same way through it.
type frame struct {
	image    [len(imageFeatures)]uint8
	detected bool
	objects  uint8 // bin of the number of counted objects
	// confidence holds the bin of each confidence.
	confidence []uint8
	// classes holds the bin of each class with objects in the frame; the
	// others count in bin 0.
	classes []classBin
}

type classBin struct {
	class string
	bin   uint8
}

// set fills f from s, reusing f's slices.
func (f *frame) set(s *Sample) {
	for i := range imageFeatures {
		f.image[i] = uint8(bin(imageFeatures[i].edges, imageFeatures[i].value(&s.Stats)))
	}
	f.detected = s.Detected
	f.confidence = f.confidence[:0]
	f.classes = f.classes[:0]
	if !s.Detected {
		return
	}
	total := 0
	for class, n := range s.Objects {
		if n > 0 {
			total += n
			f.classes = append(f.classes, classBin{class, uint8(bin(objectEdges, float64(n)))})
		}
	}
	f.objects = uint8(bin(objectEdges, float64(total)))
	for _, c := range s.Confidences {
		f.confidence = append(f.confidence, uint8(bin(confidenceEdges, float64(c))))
	}
}

// empty reports whether a detected frame has no counted object.
func (f *frame) empty() int {
	if f.objects == 0 {
		return 1
	}
	return 0
}
