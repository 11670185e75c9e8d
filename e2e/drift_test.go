package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
	"github.com/camera-exporter/camera_exporter/drift"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
)

// noisyPhotoStream encodes a photograph, through an ffmpeg filter, as a
// clip with sensor-like noise that changes every frame, as a real camera's
// picture of a still scene does. The server loops the clip, which repeats
// its key frames exactly: 75 of them in 15 s, well beyond the frozen
// check's window of 8 (of those analyzed), even at one analysis a second
// on a loaded machine, so that the loop reads live.
func noisyPhotoStream(t testing.TB, name, filter string) *rtsptest.Media {
	t.Helper()
	vf := "scale=trunc(iw/2)*2:trunc(ih/2)*2,noise=alls=6:allf=t"
	if filter != "" {
		vf = filter + "," + vf
	}
	m, err := rtsptest.Encode(t.Context(), t.TempDir(), rtsptest.H264, 25, 375,
		[]string{"-loop", "1", "-i", filepath.Join(sharedImages, name)}, "-vf", vf, "-g", "5")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// buildSharedReference builds the reference of camera from its stream for
// duration, a frame every interval, with `reference build`, and gives it to
// the cameras of to as theirs; it returns what the command printed.
func buildSharedReference(t *testing.T, cfgPath, refs, camera, duration, interval string, to ...string) string {
	t.Helper()
	out, err := exec.Command(binary, "reference", "build", "--config.file="+cfgPath, "--camera="+camera,
		"--duration="+duration, "--interval="+interval).CombinedOutput()
	if err != nil {
		t.Fatalf("reference build: %v\n%s", err, out)
	}
	ref, err := os.ReadFile(filepath.Join(refs, camera+".json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range to {
		if err := os.WriteFile(filepath.Join(refs, name+".json"), ref, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return string(out)
}

// TestDrift builds a reference of a camera from its stream, then scores
// altered versions of its scene against it, as the exporter does live.
func TestDrift(t *testing.T) {
	srv, err := rtsptest.Start(rtsptest.Options{}, map[string]*rtsptest.Media{
		"scene":   noisyPhotoStream(t, "person.jpg", ""),
		"dusk":    noisyPhotoStream(t, "person.jpg", "eq=brightness=-0.35"),
		"blurred": noisyPhotoStream(t, "person.jpg", "gblur=sigma=6"),
		"moved":   noisyPhotoStream(t, "giraffe.jpg", ""),
		"frozen":  rtsptest.Photo(t, filepath.Join(sharedImages, "person.jpg")), // the same picture, frame after frame
		// A 15 s loop of 75 key frames: the 8 latest distinct pictures
		// that the frozen check compares never span it, even when a loaded
		// machine analyzes one a second.
		"moving": rtsptest.Clip(t, rtsptest.H264, "testsrc2=s=320x240:r=25", 375, "-g", "5"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	refs := t.TempDir()
	// Every frame is decoded, so that rapid scrapes give many distinct
	// frames; the reference of "learner" is learned online.
	cfg := testutil.DetectorBlock(t, "") + fmt.Sprintf("defaults:\n  decode: all\n  reference:\n    dir: %s\n  detect:\n    classes: [person]\ncameras:\n", refs)
	for _, name := range []string{"scene", "dusk", "blurred", "moved", "frozen", "moving"} {
		cfg += fmt.Sprintf("  - name: %s\n    url: %s\n", name, srv.URL(name))
	}
	cfg += fmt.Sprintf("  - name: learner\n    url: %s\n    reference:\n      calibration: 3s\n", srv.URL("scene"))
	cfgPath := filepath.Join(t.TempDir(), "exporter.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	// The reference of the unchanged scene, from its stream; every altered
	// camera is compared with it.
	out := buildSharedReference(t, cfgPath, refs, "scene", "10s", "50ms", "dusk", "blurred", "moved")
	if !strings.Contains(out, "reference of camera scene") {
		t.Errorf("reference build says:\n%s", out)
	}

	e := startExporterWithConfig(t, cfgPath, "--collector.image.min-interval=0s")
	var metrics string
	// The learner's reference is learned online meanwhile.
	testutil.WaitFor(t, "drift scores of every camera with a reference", 60*time.Second, func() bool {
		metrics, _ = e.get("/metrics", nil)
		return strings.Count(metrics, "camera_drift_combined_score{") == 5
	})

	value := func(series string) float64 {
		t.Helper()
		v, ok := sample(metrics, series)
		if !ok {
			t.Fatalf("no %s in:\n%s", series, metrics)
		}
		return v
	}
	t.Run("drift", func(t *testing.T) {
		if v := value(`camera_drift_combined_score{camera="scene"}`); v > 0.1 {
			t.Errorf("the unchanged scene drifts by %.3f, want at most 0.1", v)
		}
		if v := value(`camera_drift_score{camera="dusk",feature="brightness"}`); v < 0.25 {
			t.Errorf("the darkened scene's brightness drifts by %.3f, want over 0.25", v)
		}
		if v := value(`camera_drift_score{camera="blurred",feature="sharpness"}`); v < 0.25 {
			t.Errorf("the blurred scene's sharpness drifts by %.3f, want over 0.25", v)
		}
		for _, name := range []string{"dusk", "blurred"} {
			if v, base := value(fmt.Sprintf(`camera_drift_combined_score{camera=%q}`, name)), value(`camera_drift_combined_score{camera="scene"}`); v <= base {
				t.Errorf("%s drifts by %.3f, no more than the unchanged scene's %.3f", name, v, base)
			}
		}
	})
	t.Run("scene change", func(t *testing.T) {
		if v := value(`camera_scene_change_score{camera="moved"}`); v < 0.3 {
			t.Errorf("another view scores %.3f, want over 0.3", v)
		}
		for _, name := range []string{"scene", "dusk"} {
			if v := value(fmt.Sprintf(`camera_scene_change_score{camera=%q}`, name)); v > 0.15 {
				t.Errorf("%s, the reference's view, scores %.3f, want under 0.15", name, v)
			}
		}
	})
	t.Run("frozen", func(t *testing.T) {
		testutil.WaitFor(t, "the frozen camera flagged", 10*time.Second, func() bool {
			m, _ := e.get("/metrics", nil)
			v, _ := sample(m, `camera_frame_frozen{camera="frozen"}`)
			return v == 1
		})
		m, _ := e.get("/metrics", nil)
		for _, name := range []string{"moving", "scene"} {
			if v, _ := sample(m, fmt.Sprintf(`camera_frame_frozen{camera=%q}`, name)); v != 0 {
				t.Errorf("%s flagged frozen", name)
			}
		}
	})
	t.Run("learned reference survives a restart", func(t *testing.T) {
		learned := filepath.Join(refs, "learner.json")
		testutil.WaitFor(t, "the learned reference saved", 30*time.Second, func() bool {
			e.get("/metrics", nil) //nolint:errcheck // scrapes drive the analyses
			_, err := os.Stat(learned)
			return err == nil
		})
		e.stop(t)
		again := startExporterWithConfig(t, cfgPath)
		testutil.WaitFor(t, "the reference loaded after the restart", 30*time.Second, func() bool {
			m, _ := again.get("/metrics", nil)
			frames, ok := sample(m, `camera_reference_frames{camera="learner"}`)
			calibrating, _ := sample(m, `camera_reference_calibrating{camera="learner"}`)
			return ok && frames > 0 && calibrating == 0
		})
	})
}

// TestReferenceFromImages builds a reference from a folder of photographs,
// as from a detector's training set: every image counts, and unrelated
// views give no scene signature.
func TestReferenceFromImages(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "exporter.yml")
	if err := os.WriteFile(cfg, []byte(testutil.DetectorBlock(t, "")+"cameras:\n  - name: gate\n    url: rtsp://192.0.2.1/s\n    detect:\n      classes: [person]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A file that is not an image is skipped.
	images := t.TempDir()
	for _, name := range []string{"person.jpg", "dog.jpg", "giraffe.jpg", "eagle.jpg"} {
		if err := os.Symlink(mustAbs(t, filepath.Join(sharedImages, name)), filepath.Join(images, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(images, "README"), []byte("the training set\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "gate.json")
	build := func() ([]byte, error) {
		return exec.Command(binary, "reference", "build", "--config.file="+cfg, "--camera=gate",
			"--images="+images, "--output="+out).CombinedOutput()
	}
	msg, err := build()
	if err != nil {
		t.Fatalf("reference build: %v\n%s", err, msg)
	}
	ref, err := drift.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(msg), "no view") {
		t.Errorf("reference build does not say the reference has no view:\n%s", msg)
	}
	if ref.Frames != 4 || ref.Signature != nil || !strings.HasPrefix(ref.Source, "images:") {
		t.Errorf("reference of %d frames from %s, signature %v; want 4 images and none", ref.Frames, ref.Source, ref.Signature != nil)
	}
	// person.jpg has one person, the other photos none: 3 frames of 4 in
	// the bin of no person.
	if got := ref.Features[drift.FeatureObjects]; len(got) == 0 || got[0] != 3 {
		t.Errorf("objects per frame %v, want 3 frames without a person", got)
	}
	if msg, err := build(); err == nil || !strings.Contains(string(msg), "--replace") {
		t.Errorf("a second build over the first: %v, want a refusal that names --replace\n%s", err, msg)
	}
}
