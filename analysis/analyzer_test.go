package analysis_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/camera-exporter/camera_exporter/analysis"
	"github.com/camera-exporter/camera_exporter/analysis/analysistest"
	"github.com/camera-exporter/camera_exporter/detector"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
	"github.com/camera-exporter/camera_exporter/video"
)

// newAnalyzer returns an Analyzer of cams that detects and follows drift,
// without a min interval.
func newAnalyzer(cams analysis.Cameras) *analysis.Analyzer {
	return analysis.New(cams, analysis.Options{Detect: true, Drift: true, Slots: make(chan struct{}, 4)}, slog.New(slog.DiscardHandler))
}

// succeeded scrapes a and returns whether the named camera's analysis
// succeeded.
func succeeded(t *testing.T, ctx context.Context, a *analysis.Analyzer, name string) bool {
	t.Helper()
	for _, sc := range a.Scrape(ctx).Cameras {
		if sc.Name == name {
			return sc.Analysis.Succeeded()
		}
	}
	t.Fatalf("the scrape has no camera %s", name)
	return false
}

// analyzed waits until an analysis of the named camera finished.
func analyzed(t *testing.T, a *analysis.Analyzer, name string) {
	t.Helper()
	testutil.WaitFor(t, "the late analysis to finish", 10*time.Second, func() bool {
		look, _ := a.Look(name)
		return !look.Analyzed.IsZero()
	})
}

// TestLateAnalysisIsTheNextScrapes checks that an analysis that missed its
// scrape's deadline is reported by the next scrape rather than thrown away,
// however short the min interval.
func TestLateAnalysisIsTheNextScrapes(t *testing.T) {
	slow := analysistest.NewCamera(t, "slow", "")
	slow.Gate = make(chan struct{})
	release := sync.OnceFunc(func() { close(slow.Gate) })
	t.Cleanup(release)
	a := newAnalyzer(analysistest.NewCameras(slow))

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if succeeded(t, ctx, a, "slow") {
		t.Fatal("the analysis succeeded before its camera answered")
	}
	release()
	analyzed(t, a, "slow")
	if !succeeded(t, context.Background(), a, "slow") {
		t.Error("the late analysis was not reported")
	}
	if n := slow.Analyses.Load(); n != 1 {
		t.Errorf("%d analyses, want the late one reported without another", n)
	}
	if !succeeded(t, context.Background(), a, "slow") {
		t.Error("the next analysis failed")
	}
	// At least: back-to-back scrapes make an interval of milliseconds, and
	// the round prepared half of it later may have started already.
	if n := slow.Analyses.Load(); n < 2 {
		t.Errorf("%d analyses, want a new one once the late one was reported", n)
	}
}

// TestScrapesPrepareTheNext checks that once the scrapes' interval is
// known, the analyses a scrape reports were started half an interval before
// it, and that no round starts without a scrape to ask for it.
func TestScrapesPrepareTheNext(t *testing.T) {
	cam := analysistest.NewCamera(t, "gate", "")
	a := newAnalyzer(analysistest.NewCameras(cam))
	analyses := func(want int64) func() bool { return func() bool { return cam.Analyses.Load() == want } }
	scrape := func() {
		t.Helper()
		if !succeeded(t, context.Background(), a, "gate") {
			t.Error("analysis failed")
		}
	}

	scrape()
	time.Sleep(time.Second)
	scrape()
	if n := cam.Analyses.Load(); n != 2 {
		t.Fatalf("%d analyses after two scrapes a second apart, want 2", n)
	}
	// Half a second later, with no scrape.
	testutil.WaitFor(t, "the next scrape's analysis", 10*time.Second, analyses(3))
	scrape()
	if n := cam.Analyses.Load(); n != 3 {
		t.Errorf("%d analyses, want the third scrape to report the prepared one", n)
	}
	// That scrape prepared one more round, and nothing follows it.
	testutil.WaitFor(t, "the fourth scrape's analysis", 10*time.Second, analyses(4))
	time.Sleep(2 * time.Second)
	if n := cam.Analyses.Load(); n != 4 {
		t.Errorf("%d analyses without scrapes, want 4", n)
	}
}

// TestOptions checks that an Analyzer runs no inference without Detect,
// and follows no drift without Drift.
func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		name          string
		detect, drift bool
	}{
		{"everything", true, true},
		{"no detection", false, true},
		{"no drift", true, false},
		{"statistics only", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			det := &analysistest.Detector{Result: detector.Result{Detections: []detector.Detection{analysistest.Detection("person", 0.75)}}}
			cams := analysistest.NewCameras().Set(det, analysistest.NewCamera(t, "gate", ""))
			a := analysis.New(cams, analysis.Options{Detect: tc.detect, Drift: tc.drift, Slots: make(chan struct{}, 1)}, slog.New(slog.DiscardHandler))
			round := a.Scrape(context.Background())
			sc := round.Cameras[0]
			if !sc.Analysis.Succeeded() || sc.Analysis.Stats.Brightness != 0.5 {
				t.Fatalf("analysis %+v, want the picture measured", sc.Analysis)
			}
			if ran := det.Calls.Load() > 0; ran != tc.detect || (sc.Detection != nil) != tc.detect || (round.Detector != nil) != tc.detect {
				t.Errorf("detector ran %v, counters %+v, round's detector %v; want detection %v", ran, sc.Detection, round.Detector, tc.detect)
			}
			if tc.detect && (sc.Analysis.Found == nil || sc.Analysis.Found.Objects["person"] != 1 || sc.Detection.Frames != 1) {
				t.Errorf("found %+v, counters %+v; want one person in one frame", sc.Analysis.Found, sc.Detection)
			}
			if (sc.Drift != nil) != tc.drift {
				t.Errorf("drift %+v, want drift followed %v", sc.Drift, tc.drift)
			}
			if tc.drift && sc.Drift.Distributions.Brightness.Count != 1 {
				t.Errorf("brightness distribution %+v, want one picture", sc.Drift.Distributions.Brightness)
			}
		})
	}
}

// TestLooks checks that the pages see the latest analysis of each camera,
// newest figures first, and that looking starts no analysis.
func TestLooks(t *testing.T) {
	gate, down := analysistest.NewCamera(t, "gate", ""), analysistest.NewCamera(t, "yard", "").Down()
	a := newAnalyzer(analysistest.NewCameras(gate, down))
	looks := a.Looks()
	if len(looks) != 2 || looks[0].Name != "gate" || !looks[0].Analyzed.IsZero() {
		t.Fatalf("looks before a scrape = %+v, want two cameras, not analyzed", looks)
	}
	if n := gate.Analyses.Load(); n != 0 {
		t.Fatalf("looking started %d analyses", n)
	}
	for range 3 {
		a.Scrape(context.Background())
	}
	look, ok := a.Look("gate")
	if !ok || look.Analyzed.IsZero() || look.Stats.Brightness != 0.5 || !look.Up {
		t.Fatalf("Look(gate) = %+v, %v", look, ok)
	}
	// At least: the third scrape may have prepared the next.
	if len(look.History) < 3 || !look.History[0].Analyzed.After(look.History[2].Analyzed) || look.History[0].Objects != -1 {
		t.Errorf("history = %+v, want 3 analyses or more, newest first, without detection", look.History)
	}
	if yard, _ := a.Look("yard"); yard.Up || !yard.Analyzed.IsZero() {
		t.Errorf("Look(yard) = %+v, want down, never analyzed", yard)
	}
	if _, ok := a.Look("nope"); ok {
		t.Error("Look(nope) found a camera")
	}
}

// TestLookFailures checks that the pages see whether a camera's latest
// analysis attempt failed, and why, exactly when one scrape's
// camera_frame_analysis_success reads 0 for it; a picture not arrived yet
// is the exception: no analysis was made.
func TestLookFailures(t *testing.T) {
	blind := &analysistest.Detector{Err: errors.New("forward pass failed")}
	for _, tc := range []struct {
		name    string
		det     *analysistest.Detector // nil: the camera does not detect
		errs    []error                // the camera's analyses'
		slow    bool                   // its analysis outlives the scrape's deadline
		success bool
		failure string // in Err, "" for none
	}{
		{name: "analyzed", success: true},
		{name: "detected", det: &analysistest.Detector{}, success: true},
		{name: "decoding fails", errs: []error{errors.New("decoding: invalid data")}, failure: "decoding: invalid data"},
		{name: "detector fails", det: blind, failure: "detecting objects: forward pass failed"},
		{name: "cut off at the deadline", slow: true, failure: "still running at the scrape's deadline"},
		{name: "no frame yet", errs: []error{video.ErrNoPicture}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			extra := ""
			var det detector.Detector
			if tc.det != nil {
				det, extra = tc.det, "    detect:\n      classes: [person]\n"
			}
			cam := analysistest.NewCamera(t, "gate", extra).Failing(tc.errs...)
			if tc.slow {
				cam.Gate = make(chan struct{})
			}
			release := sync.OnceFunc(func() {
				if cam.Gate != nil {
					close(cam.Gate)
				}
			})
			t.Cleanup(release)
			a := newAnalyzer(analysistest.NewCameras().Set(det, cam))
			if look, _ := a.Look("gate"); !look.Failed.IsZero() || look.Err != "" {
				t.Fatalf("before any analysis: failed %v: %q", look.Failed, look.Err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if got := succeeded(t, ctx, a, "gate"); got != tc.success {
				t.Errorf("analysis succeeded %v, want %v", got, tc.success)
			}
			look, _ := a.Look("gate")
			if failed := !look.Failed.IsZero(); failed != (tc.failure != "") || !strings.Contains(look.Err, tc.failure) {
				t.Errorf("failed %v: %q, want failed %v: %q", look.Failed, look.Err, tc.failure != "", tc.failure)
			}
			if !tc.slow {
				return
			}
			// The late analysis finishes: a success, the latest outcome.
			release()
			analyzed(t, a, "gate")
			if look, _ := a.Look("gate"); !look.Failed.IsZero() || look.Err != "" || look.Analyzed.IsZero() {
				t.Errorf("after the late analysis succeeded: failed %v: %q, analyzed %v", look.Failed, look.Err, look.Analyzed)
			}
		})
	}
}

// TestNoPictureIsNoFailingAnalysis checks that a camera without a picture
// yet, as a decode: all camera before its first, logs no failing analysis,
// while a picture that fails to decode does, once.
func TestNoPictureIsNoFailingAnalysis(t *testing.T) {
	cam := analysistest.NewCamera(t, "gate", "").Failing(video.ErrNoPicture, errors.New("decoding: invalid data"), errors.New("decoding: invalid data"))
	var logs testutil.SyncBuffer
	a := analysis.New(analysistest.NewCameras(cam), analysis.Options{Slots: make(chan struct{}, 1)}, slog.New(slog.NewTextHandler(&logs, nil)))
	a.Scrape(context.Background())
	if strings.Contains(logs.String(), "failing") {
		t.Errorf("no picture yet logged a failure:\n%s", logs.String())
	}
	for range 2 {
		a.Scrape(context.Background())
	}
	if n := strings.Count(logs.String(), `msg="Frame analysis failing" camera=gate err="decoding: invalid data"`); n != 1 {
		t.Errorf("logged the failing analysis %d times, want once:\n%s", n, logs.String())
	}
}
