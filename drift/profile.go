package drift

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/camera-exporter/camera_exporter/imagestats"
	"github.com/camera-exporter/camera_exporter/internal/boundedfile"
)

// profileVersion is the version of the reference file format.
const profileVersion = 1

// Sample is what one analyzed frame contributes.
type Sample struct {
	Stats imagestats.Stats
	// Detected is false when the camera does not detect; then Objects and
	// Confidences are ignored.
	Detected bool
	// Objects holds the counted objects per class in the frame. A class
	// missing from it counts 0, but only the classes it holds, 0 or not,
	// make it into a Profile: give every counted class.
	Objects map[string]int
	// Confidences are those of the counted objects.
	Confidences []float32
}

// Profile is a camera's reference: the distribution of every feature over
// the bins of Bins, and the scene signature.
type Profile struct {
	Version int       `json:"version"`
	Created time.Time `json:"created"`
	// Source tells where the frames came from, e.g. "images:/data/train",
	// "stream:rtsp://host/path" (without credentials) or "calibration".
	Source string `json:"source"`
	Frames int    `json:"frames"`
	// Features holds the counts per bin of each feature.
	Features map[string][]float64 `json:"features"`
	// Signature is the mean scene signature, imagestats.SignatureWidth x
	// imagestats.SignatureHeight luma from 0 to 1, when all frames came from
	// one camera's view; nil for a folder of unrelated images. It is the
	// reference view the frames' views register against (see View).
	Signature []float32 `json:"signature,omitempty"`
	// Width and Height are the size of the pictures the signature was
	// averaged over: a signature squeezes any picture to one size, and
	// registering a view needs the picture's proportions. Zero in files of
	// older versions, which take the size of the frames they are compared
	// with.
	Width  int `json:"width,omitempty"`
	Height int `json:"height,omitempty"`
}

// The picture sizes a reference view may have. Every real camera passes:
// 16:9, 4:3, corridor 9:16, and stitched panoramas up to four sensors wide
// (7680x1080, 7.1:1); what lies beyond is no view worth registering and
// draws, at the pages' width, pictures of gigabytes.
const (
	// MaxViewSide is the largest side an H.264 or H.265 SPS may give (the
	// camera package's bound).
	MaxViewSide = 16384
	// MaxViewPixels is the decoder's ceiling, config.MaxPicturePixelsCeiling.
	MaxViewPixels = 40_000_000
	// MaxViewAspect bounds the ratio of the longer side to the shorter.
	MaxViewAspect = 10
)

// CheckViewSize says why a picture of width x height cannot be a reference
// view; nil for such a size, or 0x0, the size unknown.
func CheckViewSize(width, height int) error {
	switch {
	case width == 0 && height == 0:
		return nil
	case width <= 0 || height <= 0:
		return fmt.Errorf("invalid picture size %dx%d", width, height)
	case width > MaxViewSide || height > MaxViewSide:
		return fmt.Errorf("picture size %dx%d: a side beyond %d pixels", width, height, MaxViewSide)
	case int64(width)*int64(height) > MaxViewPixels:
		return fmt.Errorf("picture size %dx%d: more than %d pixels", width, height, MaxViewPixels)
	case max(width, height) > MaxViewAspect*min(width, height):
		return fmt.Errorf("picture size %dx%d: proportions beyond %d:1", width, height, MaxViewAspect)
	}
	return nil
}

// HasView tells whether the profile holds a reference view to register
// frames against: built from one camera's frames, not unrelated images.
func (p *Profile) HasView() bool { return len(p.Signature) > 0 }

// Builder accumulates samples into a Profile.
type Builder struct {
	counts *counts
	// Sum of the signatures, when the Builder averages them, and the
	// picture size they all share.
	signature     []float64
	signatures    int
	width, height int
}

// NewBuilder returns an empty Builder. With scene, it also averages the
// samples' signatures: for frames of a camera's own view, not for unrelated
// images.
func NewBuilder(scene bool) *Builder {
	b := &Builder{counts: newCounts()}
	if scene {
		b.signature = make([]float64, imagestats.SignatureWidth*imagestats.SignatureHeight)
	}
	return b
}

// Add counts a sample in.
func (b *Builder) Add(s Sample) {
	var f frame
	f.set(&s)
	b.counts.add(&f, 1)
	if s.Detected {
		// Counted classes with no object in this frame are known classes
		// all the same: the profile must say they were absent.
		for class := range s.Objects {
			b.counts.class(class)
		}
	}
	// A picture of absurd proportions gives no view: the profile keeps
	// its figures, without one.
	if b.signature != nil && len(s.Stats.Signature) == len(b.signature) &&
		CheckViewSize(s.Stats.Width, s.Stats.Height) == nil && b.sameSize(s.Stats) {
		for i, v := range s.Stats.Signature {
			b.signature[i] += float64(v)
		}
		b.signatures++
	}
}

// sameSize tells whether a frame has the size of the signatures averaged so
// far, taking it from the first: the mean of pictures of another size,
// which a camera reconfigured while the reference is built sends, is no view.
func (b *Builder) sameSize(s imagestats.Stats) bool {
	if b.signatures == 0 {
		b.width, b.height = s.Width, s.Height
	}
	return s.Width == b.width && s.Height == b.height
}

// Frames returns the number of samples added.
func (b *Builder) Frames() int {
	return b.counts.frames
}

// Profile returns the reference made of the samples added so far. The
// detector's features are present once a sample was detected, the
// confidence once an object was counted.
func (b *Builder) Profile(source string, created time.Time) *Profile {
	c := b.counts
	p := &Profile{
		Version:  profileVersion,
		Created:  created,
		Source:   source,
		Frames:   c.frames,
		Features: make(map[string][]float64),
	}
	for i := range imageFeatures {
		p.Features[imageFeatures[i].name] = append([]float64(nil), c.image[i]...)
	}
	if c.detected > 0 {
		p.Features[FeatureObjects] = append([]float64(nil), c.objects...)
		p.Features[FeatureEmptyOutput] = append([]float64(nil), c.empty...)
		for class := range c.classes {
			h := make([]float64, len(objectEdges))
			c.classHistogram(h, class)
			p.Features[FeatureClassPrefix+class] = h
		}
	}
	if n := sum(c.confidence); n > 0 {
		p.Features[FeatureConfidence] = append([]float64(nil), c.confidence...)
	}
	if b.signatures > 0 {
		p.Signature = make([]float32, len(b.signature))
		for i, v := range b.signature {
			p.Signature[i] = float32(v / float64(b.signatures) / 255)
		}
		p.Width, p.Height = b.width, b.height
	}
	return p
}

func sum(h []float64) float64 {
	var n float64
	for _, v := range h {
		n += v
	}
	return n
}

// MaxProfileSize is the most that a reference file may hold: a profile is
// histograms and a 160x90 signature, about 200 KB.
const MaxProfileSize = 4 << 20

// profileFile is a reference file, as Load reads it.
var profileFile = boundedfile.Kind{What: "a reference profile", Limit: MaxProfileSize}

// Load reads a reference file written by Save and checks that this package
// can use it: its version, the number of bins of every feature, the size of
// the signature. It reads only a regular file of at most MaxProfileSize
// bytes, and never blocks on one replaced by a FIFO or a device: the
// caller may hold a lock that scrapes need.
func Load(path string) (*Profile, error) {
	data, err := boundedfile.Read(path, profileFile)
	if err != nil {
		return nil, err
	}
	var p Profile
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("drift profile %s: %w", path, err)
	}
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("drift profile %s: %w", path, err)
	}
	return &p, nil
}

func (p *Profile) validate() error {
	if p.Version != profileVersion {
		return fmt.Errorf("unsupported version %d, want %d", p.Version, profileVersion)
	}
	if p.Frames < 0 {
		return fmt.Errorf("negative frame count %d", p.Frames)
	}
	for i := range imageFeatures {
		if _, ok := p.Features[imageFeatures[i].name]; !ok {
			return fmt.Errorf("feature %q missing", imageFeatures[i].name)
		}
	}
	for name, h := range p.Features {
		e := edges(name)
		if e == nil {
			return fmt.Errorf("unknown feature %q", name)
		}
		if len(h) != len(e) {
			return fmt.Errorf("feature %q has %d bins, want %d", name, len(h), len(e))
		}
		for _, v := range h {
			if !(v >= 0) || math.IsInf(v, 1) {
				return fmt.Errorf("feature %q has an invalid count %v", name, v)
			}
		}
	}
	if n := len(p.Signature); n != 0 && n != imagestats.SignatureWidth*imagestats.SignatureHeight {
		return fmt.Errorf("signature has %d values, want %d (%dx%d)", n,
			imagestats.SignatureWidth*imagestats.SignatureHeight, imagestats.SignatureWidth, imagestats.SignatureHeight)
	}
	if err := CheckViewSize(p.Width, p.Height); err != nil {
		return err
	}
	for _, v := range p.Signature {
		if !(v >= 0 && v <= 1) {
			return fmt.Errorf("signature value %v outside 0 to 1", v)
		}
	}
	return nil
}

// Save writes p to path atomically, through a temporary file in the same
// directory renamed over it, so that a reader never sees half a file. The
// directory must exist. A profile that Load would refuse is not written.
func (p *Profile) Save(path string) (err error) {
	if err := p.validate(); err != nil {
		return fmt.Errorf("drift profile %s: %w", path, err)
	}
	data, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("drift profile %s: %w", path, err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(append(data, '\n')); err != nil {
		return err
	}
	// CreateTemp makes the file private; a reference is not secret.
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
