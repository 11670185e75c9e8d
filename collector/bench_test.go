package collector

import (
	"context"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/camera-exporter/camera_exporter/analysis/analysistest"
	"github.com/camera-exporter/camera_exporter/detector"
)

// BenchmarkScrape measures what a scrape costs the collectors themselves,
// for 100 cameras that detect, with analyses shared within the min interval
// as between an HA pair's scrapes: no decoding, no detection.
func BenchmarkScrape(b *testing.B) {
	det := &analysistest.Detector{Result: detector.Result{Detections: []detector.Detection{analysistest.Detection("person", 0.75)}}}
	var cams []*analysistest.Camera
	for i := range 100 {
		cams = append(cams, analysistest.NewCamera(b, fmt.Sprintf("cam-%03d", i), ""))
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(b, analysistest.NewCameras().Set(det, cams...)).WithContext(context.Background()))
	if _, err := reg.Gather(); err != nil { // the analyses, shared from here on
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}
