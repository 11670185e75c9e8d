package config

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/camera-exporter/camera_exporter/drift"
	"github.com/camera-exporter/camera_exporter/internal/boundedfile"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
)

// limitText is how errors write the limits of the kinds of file.
var limitText = map[int64]string{4 << 10: "4 KiB", 1 << 20: "1 MiB", 4 << 20: "4 MiB", 16 << 20: "16 MiB", 1 << 30: "1 GiB"}

// badFiles is testutil.BadFiles for kind, by name: files that no field of
// the configuration may name.
func badFiles(t *testing.T, kind boundedfile.Kind) map[string]testutil.BadFile {
	t.Helper()
	files := map[string]testutil.BadFile{}
	for _, f := range testutil.BadFiles(t, kind.Limit, fmt.Sprintf("larger than the %s that %s may hold", limitText[kind.Limit], kind.What)) {
		files[f.Name] = f
	}
	return files
}

// loadQuickly runs Load, failing the test rather than hanging when Load
// blocks, and returns how many bytes it allocated and its error.
func loadQuickly(t *testing.T, path string) (uint64, error) {
	t.Helper()
	type result struct {
		err   error
		alloc uint64
	}
	done := make(chan result, 1)
	go func() {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := Load(path)
		runtime.ReadMemStats(&after)
		done <- result{err, after.TotalAlloc - before.TotalAlloc}
	}()
	select {
	case r := <-done:
		return r.alloc, r.err
	case <-time.After(10 * time.Second): // only ends a blocked Load
		t.Fatalf("Load(%s) still blocked after 10s", path)
		return 0, nil
	}
}

// TestNamedFilesChecked checks that every file the configuration names,
// and the configuration file itself, is refused at once, without reading
// it, with an error naming the file, the line and the field, when it is
// not a regular file or larger than its kind of file may be.
func TestNamedFilesChecked(t *testing.T) {
	models, err := filepath.Abs("testdata/models")
	if err != nil {
		t.Fatal(err)
	}
	passFile, err := filepath.Abs("testdata/gate-north.pass")
	if err != nil {
		t.Fatal(err)
	}
	good := map[string]string{
		"model":         models + "/tiny.weights",
		"config":        models + "/tiny.cfg",
		"labels":        models + "/tiny.names",
		"password_file": passFile,
	}
	// The lines are those of the fields.
	const config = `detector:
  model: {{model}}
  config: {{config}}
  labels: {{labels}}
  input_size: 320
cameras:
  - name: gate
    url: rtsp://10.0.0.5/stream
    username: viewer
    password_file: {{password_file}}
    reference:
      dir: {{reference_dir}}
`
	for _, field := range []struct {
		name    string // a field's name; reference: gate.json in reference.dir
		kind    boundedfile.Kind
		line    int
		subject string
	}{
		{"model", modelWeights, 2, "detector"},
		{"config", modelDescription, 3, "detector"},
		{"labels", labelsFile, 4, "detector"},
		{"password_file", passwordFile, 10, `camera "gate"`},
		{"reference file", referenceFile, 11, `camera "gate"`},
	} {
		for name, bad := range badFiles(t, field.kind) {
			t.Run(strings.ReplaceAll(field.name, " ", "_")+"/"+name, func(t *testing.T) {
				dir := t.TempDir()
				refs := filepath.Join(dir, "refs")
				if err := os.Mkdir(refs, 0o700); err != nil {
					t.Fatal(err)
				}
				values := maps.Clone(good)
				values["reference_dir"] = refs
				named := bad.Path
				if field.name == "reference file" {
					named = filepath.Join(refs, "gate.json")
					if err := os.Symlink(bad.Path, named); err != nil {
						t.Fatal(err)
					}
				} else {
					values[field.name] = bad.Path
				}
				cfg := filepath.Join(dir, "exporter.yml")
				if err := os.WriteFile(cfg, []byte(expand(config, values)), 0o600); err != nil {
					t.Fatal(err)
				}
				alloc, err := loadQuickly(t, cfg)
				want := fmt.Sprintf("%s:%d: %s: %s: %s: %s", cfg, field.line, field.subject, field.name, named, bad.Err)
				if err == nil || err.Error() != want {
					t.Errorf("got error\n\t%v\nwant\n\t%s", err, want)
				}
				if alloc > 1<<20 {
					t.Errorf("Load allocated %d bytes, want under 1 MiB: it read the file", alloc)
				}
			})
		}
	}
	for name, bad := range badFiles(t, configFile) {
		t.Run("config_file/"+name, func(t *testing.T) {
			alloc, err := loadQuickly(t, bad.Path)
			if want := bad.Path + ": " + bad.Err; err == nil || err.Error() != want {
				t.Errorf("got error\n\t%v\nwant\n\t%s", err, want)
			}
			if alloc > 1<<20 {
				t.Errorf("Load allocated %d bytes, want under 1 MiB: it read the file", alloc)
			}
		})
	}
}

// expand replaces {{name}} in s by values[name].
func expand(s string, values map[string]string) string {
	for name, value := range values {
		s = strings.ReplaceAll(s, "{{"+name+"}}", value)
	}
	return s
}

// TestModelFilesInEitherOrder checks that the weights may be given as the
// config, as OpenCV's readNet takes them in either order: they get the
// weights' limit, and the description its own.
func TestModelFilesInEitherOrder(t *testing.T) {
	dir := t.TempDir()
	weights := filepath.Join(dir, "big.weights")
	f, err := os.Create(weights)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(modelDescription.Limit + 1); err != nil { // sparse
		t.Fatal(err)
	}
	f.Close()
	cfg, err := Parse([]byte("detector:\n  model: testdata/models/tiny.cfg\n  config: " + weights + "\n  labels: testdata/models/tiny.names\n  input_size: 320\n"))
	if err != nil {
		t.Fatalf("weights larger than a description given as config: %v", err)
	}
	if n := len(cfg.Detector.files); n != 2 {
		t.Errorf("%d model files stamped, want 2", n)
	}
	_, err = Parse([]byte("detector:\n  model: testdata/models/tiny.weights\n  config: " + weights + "\n  labels: testdata/models/tiny.names\n  input_size: 320\n"))
	want := "line 3: detector: config: " + weights + ": larger than the 16 MiB that a network description may hold"
	if err == nil || err.Error() != want {
		t.Errorf("got error\n\t%v\nwant\n\t%s", err, want)
	}
}

// TestReferenceFileOnlyStatted loads a configuration whose camera's
// reference file is a regular file that nobody, root included, may open:
// as a file written by `reference build` run as root, it is the camera's
// runtime state, which the drift refresh warns about, and the
// configuration loads. Only a write-only sysfs attribute refuses root's
// open.
func TestReferenceFileOnlyStatted(t *testing.T) {
	var unreadable string
	for _, path := range []string{"/sys/bus/pci/rescan", "/sys/bus/pci/drivers_probe"} {
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
			if _, err := os.Open(path); err != nil {
				unreadable = path
				break
			}
		}
	}
	if unreadable == "" {
		t.Skip("no regular file here that open refuses to root")
	}
	refs := t.TempDir()
	if err := os.Symlink(unreadable, filepath.Join(refs, "gate.json")); err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse([]byte("cameras:\n  - name: gate\n    url: rtsp://10.0.0.5/stream\n    reference:\n      dir: " + refs + "\n"))
	if err != nil {
		t.Fatalf("a reference file that cannot be opened fails the configuration: %v", err)
	}
	if got, want := cfg.Cameras[0].ReferenceFile(), filepath.Join(refs, "gate.json"); got != want {
		t.Errorf("reference file %s, want %s", got, want)
	}
}

// TestReferenceFileLimit checks that the limit the configuration checks
// at load is drift's, which the camera enforces as it reads the file.
func TestReferenceFileLimit(t *testing.T) {
	if referenceFile.Limit != drift.MaxProfileSize {
		t.Errorf("a reference file may hold %d bytes at load, %d as the camera reads it", referenceFile.Limit, drift.MaxProfileSize)
	}
}
