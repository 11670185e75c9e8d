package collector

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/detector"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
	"github.com/camera-exporter/camera_exporter/video"
)

// TestLooks checks that the pages see the latest analysis of each camera,
// newest figures first, and that looking starts no analysis.
func TestLooks(t *testing.T) {
	gate, down := newCamera(t, "gate", ""), newCamera(t, "yard", "").down()
	_, cc := imageOnly(t, cameras(gate, down))
	looks := cc.Looks()
	if len(looks) != 2 || looks[0].Name != "gate" || !looks[0].Analyzed.IsZero() {
		t.Fatalf("looks before a scrape = %+v, want two cameras, not analyzed", looks)
	}
	if n := gate.analyses.Load(); n != 0 {
		t.Fatalf("looking started %d analyses", n)
	}
	for range 3 {
		reg := prometheus.NewRegistry()
		reg.MustRegister(cc.WithContext(context.Background()))
		if _, err := reg.Gather(); err != nil {
			t.Fatal(err)
		}
	}
	look, ok := cc.Look("gate")
	if !ok || look.Analyzed.IsZero() || look.Stats.Brightness != 0.5 || !look.Up {
		t.Fatalf("Look(gate) = %+v, %v", look, ok)
	}
	// At least: the third scrape may have prepared the next.
	if len(look.History) < 3 || !look.History[0].Analyzed.After(look.History[2].Analyzed) || look.History[0].Objects != -1 {
		t.Errorf("history = %+v, want 3 analyses or more, newest first, without detection", look.History)
	}
	if yard, _ := cc.Look("yard"); yard.Up || !yard.Analyzed.IsZero() {
		t.Errorf("Look(yard) = %+v, want down, never analyzed", yard)
	}
	if _, ok := cc.Look("nope"); ok {
		t.Error("Look(nope) found a camera")
	}
}

// TestLookFailures checks that the pages see whether a camera's latest
// analysis attempt failed, and why, exactly when one scrape's
// camera_frame_analysis_success reads 0 for it; a picture not arrived yet
// is the exception: no analysis was made.
func TestLookFailures(t *testing.T) {
	blind := &stubDetector{err: errors.New("forward pass failed")}
	for _, tc := range []struct {
		name    string
		det     *stubDetector // nil: the camera does not detect
		errs    []error       // the camera's analyses'
		slow    bool          // its analysis outlives the scrape's deadline
		success float64
		failure string // in Err, "" for none
	}{
		{name: "analyzed", success: 1},
		{name: "detected", det: &stubDetector{}, success: 1},
		{name: "decoding fails", errs: []error{errors.New("decoding: invalid data")}, success: 0, failure: "decoding: invalid data"},
		{name: "detector fails", det: blind, success: 0, failure: "detecting objects: forward pass failed"},
		{name: "cut off at the deadline", slow: true, success: 0, failure: "still running at the scrape's deadline"},
		{name: "no frame yet", errs: []error{video.ErrNoPicture}, success: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			extra := ""
			var det detector.Detector
			if tc.det != nil {
				det, extra = tc.det, "    detect:\n      classes: [person]\n"
			}
			cam := newCamera(t, "gate", extra).failing(tc.errs...)
			if tc.slow {
				cam.gate = make(chan struct{})
			}
			release := sync.OnceFunc(func() {
				if cam.gate != nil {
					close(cam.gate)
				}
			})
			t.Cleanup(release)
			c, cc := imageOnly(t, cameras().set(det, cam))
			if look, _ := cc.Look("gate"); !look.Failed.IsZero() || look.Err != "" {
				t.Fatalf("before any analysis: failed %v: %q", look.Failed, look.Err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			compare(t, ctx, cc, fmt.Sprintf("# TYPE camera_frame_analysis_success gauge\ncamera_frame_analysis_success{camera=\"gate\"} %v\n", tc.success),
				"camera_frame_analysis_success")
			look, _ := cc.Look("gate")
			if failed := !look.Failed.IsZero(); failed != (tc.failure != "") || !strings.Contains(look.Err, tc.failure) {
				t.Errorf("failed %v: %q, want failed %v: %q", look.Failed, look.Err, tc.failure != "", tc.failure)
			}
			if !tc.slow {
				return
			}
			// The late analysis finishes: a success, the latest outcome.
			release()
			testutil.WaitFor(t, "the late analysis to finish", 10*time.Second, func() bool {
				c.mu.Lock()
				defer c.mu.Unlock()
				select {
				case <-c.states[cam].analysis.done:
					return true
				default:
					return false
				}
			})
			if look, _ := cc.Look("gate"); !look.Failed.IsZero() || look.Err != "" || look.Analyzed.IsZero() {
				t.Errorf("after the late analysis succeeded: failed %v: %q, analyzed %v", look.Failed, look.Err, look.Analyzed)
			}
		})
	}
}

// TestLookLatestOutcome checks that the latest attempt's outcome is the one
// the pages see, whatever the order in which outcomes and scrapes'
// deadlines come.
func TestLookLatestOutcome(t *testing.T) {
	now := time.Now()
	running := func() *analysis { return &analysis{done: make(chan struct{})} }
	first, second, third := running(), running(), running()
	var l lookState
	failed := func(want string) {
		t.Helper()
		var look Look
		l.fill(&look)
		if look.Err != want || look.Failed.IsZero() != (want == "") {
			t.Errorf("failed %v: %q, want %q", look.Failed, look.Err, want)
		}
	}
	l.fail(now, first, errors.New("decoding: invalid data"))
	close(first.done)
	failed("decoding: invalid data")
	// A scrape's deadline passes as the analysis finishes: it finished.
	l.observe(now, second, camera.Frame{Seq: 1})
	l.cutOff(now, second)
	failed("")
	close(second.done)
	l.cutOff(now, second)
	failed("")
	// Cut off by two scrapes, then done.
	l.cutOff(now, third)
	failed("analysis still running at the scrape's deadline")
	l.cutOff(now.Add(time.Minute), third)
	var look Look
	if l.fill(&look); !look.Failed.Equal(now.Add(time.Minute)) {
		t.Errorf("failed %v, want at the latest deadline", look.Failed)
	}
	third.detectErr = errors.New("detecting objects: forward pass failed")
	l.observe(now, third, camera.Frame{Seq: 2})
	close(third.done)
	failed("detecting objects: forward pass failed")
	// A new session's first key frame not arrived yet.
	l.fail(now, running(), video.ErrNoPicture)
	failed("")
}
