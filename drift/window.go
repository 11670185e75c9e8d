package drift

import (
	"strings"
	"time"
)

// MinSamples is the least number of values a feature needs, in the window
// and in the reference, to be scored: PSI's noise from chance alone is
// about (k−1)/n for n values over k bins, so 60 frames keep an unchanged
// scene under the 0.1 of "no drift" (about 0.08), where 20 would read 0.23.
const MinSamples = 60

// Window holds the samples of the recent past for scoring against a
// reference. It keeps their bin counts up to date as samples come and go,
// so that adding and scoring cost does not depend on its size. It is not
// safe for concurrent use.
type Window struct {
	length time.Duration
	max    int
	// ring holds the samples in the order they came, the oldest at head;
	// it grows up to max and then reuses its entries and their slices.
	ring    []entry
	head, n int
	counts  *counts
	scratch []float64 // a class's histogram while scoring
}

type entry struct {
	t time.Time
	f frame
}

// NewWindow returns an empty Window that keeps samples no older than length,
// and no more than maxSamples of them. It panics if maxSamples is below 1.
func NewWindow(length time.Duration, maxSamples int) *Window {
	if maxSamples < 1 {
		panic("drift: NewWindow with maxSamples below 1")
	}
	return &Window{
		length:  length,
		max:     maxSamples,
		counts:  newCounts(),
		scratch: make([]float64, len(objectEdges)),
	}
}

// Add adds a sample taken at now, and drops the samples older than the
// window's length and those beyond its maximum number. Times must not
// decrease from one call to the next.
func (w *Window) Add(now time.Time, s Sample) {
	w.expire(now)
	if w.n == w.max {
		w.drop()
	}
	if w.n == len(w.ring) {
		w.grow()
	}
	e := &w.ring[(w.head+w.n)%len(w.ring)]
	e.t = now
	e.f.set(&s)
	w.counts.add(&e.f, 1)
	w.n++
}

// Len returns the number of samples in the window.
func (w *Window) Len() int {
	return w.n
}

// Scores drops the samples older than the window's length at now, and
// returns the PSI of every feature that both the window and ref, a Profile
// from Load or a Builder, hold at least MinSamples values of, by feature
// name; and the combined score, the mean PSI of the image features, with ok
// true. ok is false, and scores nil, when they are too few to score.
//
// The combined score leaves out the detector's features: how many objects
// a site shows depends on the work going on as much as on the camera, and
// cameras without a detector have none, so that the combined scores of all
// cameras compare.
func (w *Window) Scores(ref *Profile, now time.Time) (scores map[string]float64, combined float64, ok bool) {
	w.expire(now)
	c := w.counts
	if ref == nil || c.frames < MinSamples {
		return nil, 0, false
	}
	scores = make(map[string]float64)
	score := func(name string, cur []float64, n float64) bool {
		r := ref.Features[name]
		if n < MinSamples || r == nil || sum(r) < MinSamples {
			return false
		}
		scores[name] = PSI(r, cur)
		return true
	}
	n := 0
	for i := range imageFeatures {
		if score(imageFeatures[i].name, c.image[i], float64(c.frames)) {
			combined += scores[imageFeatures[i].name]
			n++
		}
	}
	if n == 0 {
		return nil, 0, false
	}
	detected := float64(c.detected)
	score(FeatureObjects, c.objects, detected)
	score(FeatureEmptyOutput, c.empty, detected)
	score(FeatureConfidence, c.confidence, sum(c.confidence))
	if c.detected >= MinSamples {
		for name := range ref.Features {
			if class, ok := strings.CutPrefix(name, FeatureClassPrefix); ok {
				c.classHistogram(w.scratch, class)
				score(name, w.scratch, detected)
			}
		}
	}
	return scores, combined / float64(n), true
}

// expire drops the samples older than the window's length at now.
func (w *Window) expire(now time.Time) {
	for w.n > 0 && now.Sub(w.ring[w.head].t) > w.length {
		w.drop()
	}
}

// drop removes the oldest sample.
func (w *Window) drop() {
	w.counts.add(&w.ring[w.head].f, -1)
	w.head = (w.head + 1) % len(w.ring)
	w.n--
}

// grow makes room for more samples, up to the maximum, so that a window
// sized for days of samples takes memory only as they come.
func (w *Window) grow() {
	ring := make([]entry, min(w.max, max(16, 2*len(w.ring))))
	for i := range w.n {
		ring[i] = w.ring[(w.head+i)%len(w.ring)]
	}
	w.ring, w.head = ring, 0
}
