//go:build matprofile

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"gocv.io/x/gocv"

	"github.com/camera-exporter/camera_exporter/analysis"
	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/camera/decode"
	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
	"github.com/camera-exporter/camera_exporter/collector"
	"github.com/camera-exporter/camera_exporter/config"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
	"github.com/camera-exporter/camera_exporter/pages"
)

// TestMatProfileAfterScrapes runs the whole pipeline in process, real
// decoder and detector, for many scrapes and a reload, and checks that
// every gocv Mat is closed in the end.
func TestMatProfileAfterScrapes(t *testing.T) {
	// Every scrape analyzes anew.
	if _, err := kingpin.CommandLine.Parse([]string{"--collector.image.min-interval=0s"}); err != nil {
		t.Fatal(err)
	}
	start := gocv.MatProfile.Count()
	srv, err := rtsptest.Start(rtsptest.Options{}, map[string]*rtsptest.Media{
		"person": rtsptest.Photo(t, testutil.Shared(t, "images", "person.jpg")),
		"gray":   rtsptest.Clip(t, rtsptest.MJPEG, "color=c=gray:s=320x240:r=25", 5),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	yml := testutil.DetectorBlock(t, "") + fmt.Sprintf("cameras:\n  - name: person\n    url: %s\n  - name: gray\n    url: %s\n    decode: all\n",
		srv.URL("person"), srv.URL("gray"))
	cfg, err := config.Parse([]byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	manager := camera.NewManager(camera.AsNewDecoder(decode.New), logger)
	detector := analysis.NewCurrentDetector(loadDetector, logger)
	apply := applyConfig(manager, detector)
	// The pictures kept for the camera pages are converted too.
	manager.KeepSnapshots(pages.SnapshotWidth)
	if err := apply(cfg); err != nil {
		t.Fatal(err)
	}
	cc, err := collector.NewCameraCollector(analysis.ManagerCameras(manager, detector), logger, "image", "detection", "drift")
	if err != nil {
		t.Fatal(err)
	}
	scrape := func() {
		reg := prometheus.NewRegistry()
		reg.MustRegister(cc.WithContext(context.Background()))
		if _, err := reg.Gather(); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, "both cameras up", 10*time.Second, func() bool {
		for _, s := range manager.Streams() {
			if !s.Up(time.Now()) {
				return false
			}
		}
		return true
	})
	for range 50 {
		scrape()
	}
	// A reload drops a camera and its decoder.
	cfg.Cameras = cfg.Cameras[:1]
	if err := apply(cfg); err != nil {
		t.Fatal(err)
	}
	scrape()
	manager.Close()
	detector.Close()
	if leaked := gocv.MatProfile.Count() - start; leaked != 0 {
		t.Errorf("%d Mats leaked", leaked)
	}
}
