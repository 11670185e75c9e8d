package collector

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
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
