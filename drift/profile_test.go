package drift_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/camera-exporter/camera_exporter/drift"
	"github.com/camera-exporter/camera_exporter/imagestats"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
)

// flatSignature returns a signature of one level.
func flatSignature(level uint8) []uint8 {
	sig := make([]uint8, imagestats.SignatureWidth*imagestats.SignatureHeight)
	for i := range sig {
		sig[i] = level
	}
	return sig
}

func TestBuilder(t *testing.T) {
	b := drift.NewBuilder(true)
	samples := []drift.Sample{
		{Stats: imagestats.Stats{Brightness: 0.45, Contrast: 0.2, Sharpness: 3e-3, Signature: flatSignature(0)},
			Detected: true, Objects: map[string]int{"person": 2, "car": 0}, Confidences: []float32{0.55, 0.91}},
		{Stats: imagestats.Stats{Brightness: 0.05, DarkRatio: 0.5, Signature: flatSignature(255)},
			Detected: true, Objects: map[string]int{"person": 0}},
		// Not run through the detector: image features only; and no
		// signature, so the mean is of the two others.
		{Stats: imagestats.Stats{Brightness: 1, OverexposedRatio: 1, EdgeDensity: 0.07, Saturation: 0.3}},
	}
	for _, s := range samples {
		b.Add(s)
	}
	if b.Frames() != 3 {
		t.Fatalf("Frames() = %d, want 3", b.Frames())
	}
	created := time.Date(2025, 11, 26, 8, 0, 0, 0, time.UTC)
	p := b.Profile("stream:rtsp://cam1/live", created)

	want := map[string][]float64{
		drift.FeatureBrightness:        {1, 0, 0, 0, 1, 0, 0, 0, 0, 1},
		drift.FeatureContrast:          {2, 0, 0, 1, 0, 0, 0, 0, 0, 0},
		drift.FeatureDarkPixels:        {2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0},
		drift.FeatureOverexposedPixels: {2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1},
		// 0 (twice) ≤ 1e-6; 3e-3 in (1e-3, 10^-2.5].
		drift.FeatureSharpness:   {2, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0},
		drift.FeatureEdgeDensity: {2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0},
		drift.FeatureSaturation:  {2, 0, 1, 0, 0, 0, 0, 0, 0, 0},
		// Two detected frames: 2 objects, and none.
		drift.FeatureObjects:     {1, 0, 1, 0, 0, 0, 0, 0, 0, 0},
		drift.FeatureEmptyOutput: {1, 1},
		drift.FeatureConfidence:  {0, 0, 0, 0, 0, 1, 0, 0, 0, 1},
		"objects_person":         {1, 0, 1, 0, 0, 0, 0, 0, 0, 0},
		// Counted but never found: known all the same.
		"objects_car": {2, 0, 0, 0, 0, 0, 0, 0, 0, 0},
	}
	if !reflect.DeepEqual(p.Features, want) {
		t.Errorf("Features = %v\nwant %v", p.Features, want)
	}
	if p.Version != 1 || p.Frames != 3 || p.Source != "stream:rtsp://cam1/live" || !p.Created.Equal(created) {
		t.Errorf("Profile = version %d, %d frames, source %q, created %v", p.Version, p.Frames, p.Source, p.Created)
	}
	if len(p.Signature) != imagestats.SignatureWidth*imagestats.SignatureHeight || p.Signature[0] != 0.5 || p.Signature[len(p.Signature)-1] != 0.5 {
		t.Errorf("Signature: %d values, first %v, want %d of 0.5", len(p.Signature), p.Signature[0], imagestats.SignatureWidth*imagestats.SignatureHeight)
	}
}

// TestBuilderViewSize checks that the reference view is the mean of the
// frames of one size, the first's, and records it.
func TestBuilderViewSize(t *testing.T) {
	b := drift.NewBuilder(true)
	for _, s := range []imagestats.Stats{
		{Width: 1280, Height: 720, Signature: flatSignature(100)},
		// The camera reconfigured meanwhile: another view.
		{Width: 640, Height: 480, Signature: flatSignature(0)},
		{Width: 1280, Height: 720, Signature: flatSignature(200)},
	} {
		b.Add(drift.Sample{Stats: s})
	}
	p := b.Profile("stream:rtsp://cam1/live", time.Now())
	if !p.HasView() || p.Width != 1280 || p.Height != 720 || p.Signature[0] != 150.0/255 {
		t.Errorf("view %v of %dx%d, first value %v; want one of 1280x720 with %v", p.HasView(), p.Width, p.Height, p.Signature[0], 150.0/255)
	}
	if p.Frames != 3 {
		t.Errorf("Frames = %d, want every frame counted in the features", p.Frames)
	}
}

// TestViewSize checks the bounds of a reference view's size: every real
// camera's picture passes, a sliver does not.
func TestViewSize(t *testing.T) {
	for _, tc := range []struct {
		width, height int
		ok            bool
	}{
		{0, 0, true}, // unknown, in files of older versions
		{640, 480, true},
		{1920, 1080, true},
		{1080, 1920, true}, // corridor mode
		{7680, 4320, true},
		{7680, 2160, true}, // 32:9 panorama
		{7680, 1080, true}, // four sensors stitched
		{8192, 1728, true},
		{16, 16, true},
		{16, 16384, false},
		{16384, 16, false},
		{1920, 180, false},
		{16384, 16384, false},
		{32768, 4096, false},
		{1920, 0, false},
		{-1920, -1080, false},
	} {
		if err := drift.CheckViewSize(tc.width, tc.height); (err == nil) != tc.ok {
			t.Errorf("CheckViewSize(%d, %d) = %v, want ok %v", tc.width, tc.height, err, tc.ok)
		}
	}
}

// TestBuilderRefusesAbsurdView checks that frames of a size no reference
// view may have give a reference without a view, which saves and loads,
// and that a profile with such a size is not saved.
func TestBuilderRefusesAbsurdView(t *testing.T) {
	b := drift.NewBuilder(true)
	for range drift.MinSamples {
		b.Add(drift.Sample{Stats: imagestats.Stats{Width: 16, Height: 16384, Brightness: 0.5, Signature: flatSignature(100)}})
	}
	p := b.Profile("calibration", time.Now())
	if p.HasView() || p.Width != 0 || p.Height != 0 || p.Frames != drift.MinSamples {
		t.Errorf("view %v of %dx%d, %d frames; want no view and %d frames", p.HasView(), p.Width, p.Height, p.Frames, drift.MinSamples)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "sliver.json")
	if err := p.Save(path); err != nil {
		t.Fatal(err)
	}
	if _, err := drift.Load(path); err != nil {
		t.Errorf("the reference without a view: %v", err)
	}

	p.Signature, p.Width, p.Height = make([]float32, imagestats.SignatureWidth*imagestats.SignatureHeight), 16, 16384
	path = filepath.Join(dir, "absurd.json")
	if err := p.Save(path); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "16x16384") {
		t.Errorf("Save = %v, want an error naming %s and the size", err, path)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the refused profile was written: %v", err)
	}
}

func TestBuilderWithoutDetectionOrScene(t *testing.T) {
	b := drift.NewBuilder(false)
	b.Add(drift.Sample{Stats: imagestats.Stats{Brightness: 0.5, Signature: flatSignature(9)}})
	p := b.Profile("images:/data/train", time.Now())
	if p.Signature != nil || p.HasView() {
		t.Errorf("Signature of unrelated images = %d values, want nil", len(p.Signature))
	}
	for name := range p.Features {
		if drift.Bins(name) == nil || strings.HasPrefix(name, "objects") || name == drift.FeatureConfidence || name == drift.FeatureEmptyOutput {
			t.Errorf("feature %q in a profile without detection", name)
		}
	}
	if len(p.Features) != 7 {
		t.Errorf("%d features, want the 7 image features", len(p.Features))
	}
}

func TestSaveLoad(t *testing.T) {
	b := drift.NewBuilder(true)
	for i := range 30 {
		sig := flatSignature(uint8(i))
		sig[0] = 200
		b.Add(drift.Sample{
			Stats:    imagestats.Stats{Brightness: float64(i) / 30, Sharpness: 1e-3, Signature: sig},
			Detected: true, Objects: map[string]int{"person": i % 3}, Confidences: []float32{0.7},
		})
	}
	p := b.Profile("calibration", time.Date(2025, 11, 26, 8, 0, 0, 0, time.UTC))
	dir := t.TempDir()
	path := filepath.Join(dir, "cam1.json")
	if err := p.Save(path); err != nil {
		t.Fatal(err)
	}
	// Saving again replaces the file.
	if err := p.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := drift.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, p) {
		t.Errorf("Load(Save(p)) = %+v\nwant %+v", got, p)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d files, want the profile alone (no temporary file left)", len(entries))
	}
	if err := p.Save(filepath.Join(dir, "missing", "cam1.json")); err == nil {
		t.Error("Save into a missing directory succeeded")
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	valid := func() string {
		var f []string
		for _, name := range []string{drift.FeatureBrightness, drift.FeatureContrast, drift.FeatureDarkPixels,
			drift.FeatureOverexposedPixels, drift.FeatureSharpness, drift.FeatureEdgeDensity, drift.FeatureSaturation} {
			f = append(f, `"`+name+`":`+zeros(len(drift.Bins(name))))
		}
		return strings.Join(f, ",")
	}()
	for _, tc := range []struct {
		name, content, want string
	}{
		{"bad json", `{"version":1,`, "unexpected end of JSON input"},
		{"wrong version", `{"version":2,"features":{` + valid + `}}`, "unsupported version 2, want 1"},
		{"no version", `{"features":{` + valid + `}}`, "unsupported version 0, want 1"},
		{"bin count", `{"version":1,"features":{` + valid + `,"objects":[1,2,3]}}`, `feature "objects" has 3 bins, want 10`},
		{"class bin count", `{"version":1,"features":{` + valid + `,"objects_person":[1]}}`, `feature "objects_person" has 1 bins, want 10`},
		{"unknown feature", `{"version":1,"features":{` + valid + `,"hue":[1]}}`, `unknown feature "hue"`},
		{"missing image feature", `{"version":1,"features":{"brightness":` + zeros(10) + `}}`, `feature "contrast" missing`},
		{"negative count", `{"version":1,"features":{` + valid + `,"empty_output":[1,-1]}}`, `feature "empty_output" has an invalid count -1`},
		{"signature size", `{"version":1,"features":{` + valid + `},"signature":[0.5,0.5]}`, "signature has 2 values, want 14400 (160x90)"},
		{"picture size", `{"version":1,"features":{` + valid + `},"width":1280}`, "invalid picture size 1280x0"},
		{"negative picture size", `{"version":1,"features":{` + valid + `},"width":-16,"height":9}`, "invalid picture size -16x9"},
		// What a camera sending a legal 16x16384 picture calibrated.
		{"tall picture", `{"version":1,"features":{` + valid + `},"width":16,"height":16384}`, "picture size 16x16384: proportions beyond 10:1"},
		{"wide picture", `{"version":1,"features":{` + valid + `},"width":16384,"height":1000}`, "picture size 16384x1000: proportions beyond 10:1"},
		{"long side", `{"version":1,"features":{` + valid + `},"width":20000,"height":10000}`, "picture size 20000x10000: a side beyond 16384 pixels"},
		{"many pixels", `{"version":1,"features":{` + valid + `},"width":16384,"height":16384}`, "picture size 16384x16384: more than 40000000 pixels"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".json")
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := drift.Load(path)
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load = %v, want an error naming %s and saying %q", err, path, tc.want)
			}
		})
	}
	t.Run("valid", func(t *testing.T) {
		path := filepath.Join(dir, "valid.json")
		if err := os.WriteFile(path, []byte(`{"version":1,"features":{`+valid+`}}`), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := drift.Load(path); err != nil {
			t.Error(err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		path := filepath.Join(dir, "missing.json")
		if _, err := drift.Load(path); err == nil || !strings.Contains(err.Error(), path) || !os.IsNotExist(err) {
			t.Errorf("Load = %v, want a not-exist error naming %s", err, path)
		}
	})
}

// TestLoadRefusesBadFiles loads reference files replaced by files that
// would block the camera's drift state, whose lock scrapes take, or fill
// the memory: Load refuses each at once, naming it.
func TestLoadRefusesBadFiles(t *testing.T) {
	for _, bad := range testutil.BadFiles(t, drift.MaxProfileSize, "larger than the 4 MiB that a reference profile may hold") {
		t.Run(bad.Name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "gate.json")
			if err := os.Symlink(bad.Path, path); err != nil {
				t.Fatal(err)
			}
			err := testutil.Unblocked(t, "Load", func() error {
				_, err := drift.Load(path)
				return err
			})
			if want := path + ": " + bad.Err; err == nil || err.Error() != want {
				t.Errorf("Load: %v, want %s", err, want)
			}
		})
	}
}

func zeros(n int) string {
	return "[" + strings.TrimSuffix(strings.Repeat("0,", n), ",") + "]"
}
