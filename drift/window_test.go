package drift_test

import (
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/camera-exporter/camera_exporter/drift"
	"github.com/camera-exporter/camera_exporter/imagestats"
)

// scene draws the samples of a camera: a picture whose statistics vary
// around their means as the light and the site do, and a detector finding
// 0 to 3 people.
type scene struct {
	rnd        *rand.Rand
	brightness float64 // mean brightness
	people     int     // people per frame are drawn from 0 to people-1
}

func newScene(seed uint64) *scene {
	return &scene{rnd: rand.New(rand.NewPCG(seed, 1)), brightness: 0.45, people: 4}
}

func (s *scene) sample() drift.Sample {
	r := s.rnd
	ratio := func(v float64) float64 { return min(max(v, 0), 1) }
	overexposed := 0.0
	if r.Float64() < 0.3 {
		overexposed = r.ExpFloat64() * 0.01
	}
	people := r.IntN(s.people)
	conf := make([]float32, people)
	for i := range conf {
		conf[i] = float32(0.5 + 0.45*r.Float64())
	}
	return drift.Sample{
		Stats: imagestats.Stats{
			Brightness:       ratio(s.brightness + 0.08*r.NormFloat64()),
			Contrast:         ratio(0.2 + 0.03*r.NormFloat64()),
			DarkRatio:        ratio(r.ExpFloat64() * 0.03),
			OverexposedRatio: ratio(overexposed),
			Sharpness:        5e-3 * math.Exp(0.5*r.NormFloat64()),
			EdgeDensity:      ratio(0.08 + 0.015*r.NormFloat64()),
			Saturation:       ratio(0.25 + 0.05*r.NormFloat64()),
		},
		Detected:    true,
		Objects:     map[string]int{"person": people, "car": 0},
		Confidences: conf,
	}
}

// reference builds a profile of n frames of s.
func (s *scene) reference(n int) *drift.Profile {
	b := drift.NewBuilder(false)
	for range n {
		b.Add(s.sample())
	}
	return b.Profile("calibration", time.Time{})
}

// window fills an hour's window with n samples of s taken 15 s apart,
// and returns it with the time of the last.
func (s *scene) window(n int) (*drift.Window, time.Time) {
	w := drift.NewWindow(time.Hour, 1000)
	now := time.Date(2025, 11, 26, 8, 0, 0, 0, time.UTC)
	for i := range n {
		if i > 0 {
			now = now.Add(15 * time.Second)
		}
		w.Add(now, s.sample())
	}
	return w, now
}

var imageFeatureNames = []string{
	drift.FeatureBrightness, drift.FeatureContrast, drift.FeatureDarkPixels, drift.FeatureOverexposedPixels,
	drift.FeatureSharpness, drift.FeatureEdgeDensity, drift.FeatureSaturation,
}

func TestWindowScores(t *testing.T) {
	ref := newScene(1).reference(5000)
	for _, tc := range []struct {
		name   string
		change func(*scene)
		// high are the features that must score above 0.25; the others
		// stay below 0.1.
		high []string
		// nobody: no confidence to score.
		nobody bool
	}{
		{"same distribution", func(*scene) {}, nil, false},
		{"darker", func(s *scene) { s.brightness = 0.2 }, []string{drift.FeatureBrightness}, false},
		{"nobody on site", func(s *scene) { s.people = 1 },
			[]string{drift.FeatureObjects, drift.FeatureEmptyOutput, "objects_person"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newScene(2)
			tc.change(s)
			w, now := s.window(240)
			scores, combined, ok := w.Scores(ref, now)
			if !ok {
				t.Fatal("Scores not ok with 240 samples")
			}
			high := map[string]bool{}
			for _, f := range tc.high {
				high[f] = true
			}
			var sum float64
			for _, f := range imageFeatureNames {
				sum += scores[f]
			}
			if math.Abs(combined-sum/7) > 1e-12 {
				t.Errorf("combined = %.4f, want the mean of the image features' scores, %.4f", combined, sum/7)
			}
			if len(tc.high) == 0 && combined >= 0.1 {
				t.Errorf("combined = %.4f, want below 0.1", combined)
			}
			want := slices.Concat(imageFeatureNames, []string{drift.FeatureObjects, drift.FeatureEmptyOutput, "objects_person", "objects_car"})
			if !tc.nobody {
				want = append(want, drift.FeatureConfidence)
			}
			for _, f := range want {
				v, ok := scores[f]
				switch {
				case !ok:
					t.Errorf("no %s score", f)
				case high[f] && v <= 0.25:
					t.Errorf("%s = %.4f, want above 0.25", f, v)
				case !high[f] && v >= 0.1:
					t.Errorf("%s = %.4f, want below 0.1", f, v)
				}
			}
			if len(scores) != len(want) {
				t.Errorf("scores %v, want %d features", scores, len(want))
			}
		})
	}
}

func TestWindowPerClass(t *testing.T) {
	// The reference sees people and, in one frame in ten, a truck.
	b := drift.NewBuilder(false)
	for i := range 200 {
		b.Add(drift.Sample{Detected: true, Objects: map[string]int{"person": i % 3, "truck": min(i%10, 1) ^ 1}})
	}
	ref := b.Profile("calibration", time.Time{})
	if got, want := ref.Features["objects_truck"], []float64{180, 20, 0, 0, 0, 0, 0, 0, 0, 0}; !reflect.DeepEqual(got, want) {
		t.Fatalf("objects_truck = %v, want %v", got, want)
	}

	// The window: the same people, trucks every other frame; classes the
	// reference never saw are not scored.
	w := drift.NewWindow(time.Hour, 100)
	now := time.Now()
	for i := range 60 {
		w.Add(now, drift.Sample{Detected: true, Objects: map[string]int{"person": i % 3, "truck": i % 2, "dog": 1}})
	}
	scores, _, ok := w.Scores(ref, now)
	if !ok {
		t.Fatal("Scores not ok")
	}
	// 200 frames 180/20 against 60 frames 30/30, half a count each:
	// (30.5/61 − 180.5/201)·ln(30.5/61 / (180.5/201)) +
	// (30.5/61 − 20.5/201)·ln(30.5/61 / (20.5/201)) = 0.233 + 0.632.
	if got := scores["objects_truck"]; math.Abs(got-0.8650) > 1e-3 {
		t.Errorf("objects_truck = %.4f, want 0.8650", got)
	}
	if got := scores["objects_person"]; got >= 0.01 {
		t.Errorf("objects_person = %.4f, want about 0", got)
	}
	for f := range scores {
		if strings.Contains(f, "dog") {
			t.Errorf("class missing from the reference scored: %s", f)
		}
	}
}

func TestWindowTooFew(t *testing.T) {
	s := newScene(3)
	ref := s.reference(1000)

	w, now := s.window(drift.MinSamples - 1)
	if scores, _, ok := w.Scores(ref, now); ok || scores != nil {
		t.Errorf("Scores with %d samples = %v, %v; want not ok", drift.MinSamples-1, scores, ok)
	}
	w.Add(now, s.sample())
	if _, _, ok := w.Scores(ref, now); !ok {
		t.Errorf("Scores with %d samples not ok", drift.MinSamples)
	}
	if _, _, ok := w.Scores(nil, now); ok {
		t.Error("Scores without a reference ok")
	}
	if _, _, ok := w.Scores(s.reference(drift.MinSamples-1), now); ok {
		t.Errorf("Scores against a reference of %d frames ok", drift.MinSamples-1)
	}

	// Enough frames, too few confidences: the camera sees nobody.
	s.people = 1
	w, now = s.window(100)
	scores, _, ok := w.Scores(ref, now)
	if !ok {
		t.Fatal("Scores not ok")
	}
	if _, ok := scores[drift.FeatureConfidence]; ok {
		t.Error("confidence scored without a confidence in the window")
	}

	// Frames not run through the detector score the image alone.
	w = drift.NewWindow(time.Hour, 2*drift.MinSamples)
	for range drift.MinSamples {
		smp := s.sample()
		smp.Detected = false
		w.Add(now, smp)
	}
	scores, _, ok = w.Scores(ref, now)
	if !ok || len(scores) != len(imageFeatureNames) {
		t.Errorf("Scores without detection = %v, %v; want the %d image features", scores, ok, len(imageFeatureNames))
	}
}

func TestWindowExpiry(t *testing.T) {
	start := time.Date(2025, 11, 26, 8, 0, 0, 0, time.UTC)
	s := newScene(4)
	ref := s.reference(1000)

	w := drift.NewWindow(10*time.Minute, 1000)
	for i := range 180 {
		w.Add(start.Add(time.Duration(i)*5*time.Second), s.sample())
	}
	// The last sample came at 14:55; those before 4:55 are older than ten
	// minutes.
	if w.Len() != 121 {
		t.Errorf("Len() = %d after 15 minutes of a 10-minute window, want 121", w.Len())
	}
	// Scoring at a later time drops what it makes too old: at 20:00, the
	// samples from 10:00 on are left, as many as scoring needs.
	if _, _, ok := w.Scores(ref, start.Add(20*time.Minute)); !ok || w.Len() != drift.MinSamples {
		t.Errorf("Scores ok %v, Len() %d at 20:00, want ok and %d", ok, w.Len(), drift.MinSamples)
	}
	if _, _, ok := w.Scores(ref, start.Add(time.Hour)); ok || w.Len() != 0 {
		t.Errorf("Scores ok %v, Len() %d an hour later, want not ok and 0", ok, w.Len())
	}

	w = drift.NewWindow(time.Hour, 5)
	for range 8 {
		w.Add(start, s.sample())
	}
	if w.Len() != 5 {
		t.Errorf("Len() = %d after 8 samples in a window of 5, want 5", w.Len())
	}
}

// The running counts of a window that dropped samples, by age or by
// number, after its buffer grew and wrapped, are those of a window that
// only ever held the samples left.
func TestWindowRunningCounts(t *testing.T) {
	ref := newScene(5).reference(1000)
	start := time.Date(2025, 11, 26, 8, 0, 0, 0, time.UTC)
	var samples []drift.Sample
	s := newScene(6)
	for range 500 {
		samples = append(samples, s.sample())
	}
	at := func(i int) time.Time { return start.Add(time.Duration(i) * 15 * time.Second) }

	for _, tc := range []struct {
		name   string
		length time.Duration
		max    int
		left   int // the last samples that stay
	}{
		{"by number", 24 * time.Hour, 70, 70},
		{"by age", 30 * time.Minute, 1000, 121},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := drift.NewWindow(tc.length, tc.max)
			for i, smp := range samples {
				w.Add(at(i), smp)
			}
			fresh := drift.NewWindow(tc.length, tc.max)
			for i := len(samples) - tc.left; i < len(samples); i++ {
				fresh.Add(at(i), samples[i])
			}
			now := at(len(samples) - 1)
			got, gotCombined, _ := w.Scores(ref, now)
			want, wantCombined, _ := fresh.Scores(ref, now)
			if w.Len() != tc.left || !reflect.DeepEqual(got, want) || gotCombined != wantCombined {
				t.Errorf("window of %d: %v, %v\nwant %d: %v, %v", w.Len(), got, gotCombined, tc.left, want, wantCombined)
			}
		})
	}
}

func TestNewWindowPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("NewWindow with maxSamples 0 did not panic")
		}
	}()
	drift.NewWindow(time.Hour, 0)
}

// BenchmarkWindow measures what a scrape costs: adding a frame to a full
// window of an hour at 15-second scrapes, and scoring it.
func BenchmarkWindow(b *testing.B) {
	s := newScene(7)
	ref := s.reference(5000)
	w, now := s.window(240)
	samples := make([]drift.Sample, 256)
	for i := range samples {
		samples[i] = s.sample()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		now = now.Add(15 * time.Second)
		w.Add(now, samples[i%len(samples)])
		if _, _, ok := w.Scores(ref, now); !ok {
			b.Fatal("not ok")
		}
	}
}
