package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
	"github.com/camera-exporter/camera_exporter/detector/dnn"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
)

// The real detectors and photographs, shared by every checkout beside the
// repository; never copied into it.
var (
	sharedImages = filepath.Join(repoRoot, "..", "shared", "images")
	sharedModels = filepath.Join(repoRoot, "..", "shared", "models")
	cocoModel    = filepath.Join(sharedModels, "yolo-fastest-1.1")
	bodyModel    = filepath.Join(sharedModels, "yolo-fastest-1.1-body")
)

func TestDetection(t *testing.T) {
	srv, err := rtsptest.Start(rtsptest.Options{}, map[string]*rtsptest.Media{
		"person":  rtsptest.Photo(t, filepath.Join(sharedImages, "person.jpg")),
		"dog":     rtsptest.Photo(t, filepath.Join(sharedImages, "dog.jpg")),
		"giraffe": rtsptest.Photo(t, filepath.Join(sharedImages, "giraffe.jpg")),
		"eagle":   rtsptest.Photo(t, filepath.Join(sharedImages, "eagle.jpg")),
		"gray":    rtsptest.Clip(t, rtsptest.H264, "color=c=gray:s=320x240:r=25", 25),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cameras := "defaults:\n  detect:\n    classes: [person]\ncameras:\n"
	for _, name := range []string{"person", "dog", "giraffe", "eagle", "gray"} {
		cameras += fmt.Sprintf("  - name: %s\n    url: %s\n", name, srv.URL(name))
	}
	// One camera counts every class, as cameras do without a filter.
	cameras += fmt.Sprintf("  - name: person-all\n    url: %s\n    detect:\n      classes: []\n", srv.URL("person"))
	cfg := testutil.DetectorBlock(t, "") + cameras
	e := startExporter(t, cfg)

	var metrics string
	testutil.WaitFor(t, "every camera detected", 60*time.Second, func() bool {
		metrics, _ = e.get("/metrics", nil)
		for _, name := range []string{"person", "dog", "giraffe", "eagle", "gray", "person-all"} {
			if v, _ := sample(metrics, fmt.Sprintf("camera_analyzed_frames_total{camera=%q}", name)); v < 1 {
				return false
			}
		}
		return true
	})

	t.Run("values", func(t *testing.T) {
		atLeast := func(series string, min float64) {
			t.Helper()
			if v, ok := sample(metrics, series); !ok || v < min {
				t.Errorf("%s = %v (found %v), want at least %v", series, v, ok, min)
			}
		}
		exactly := func(series string, want float64) {
			t.Helper()
			if v, ok := sample(metrics, series); !ok || v != want {
				t.Errorf("%s = %v (found %v), want %v", series, v, ok, want)
			}
		}
		atLeast(`camera_detected_objects{camera="person",class="person"}`, 1)
		atLeast(`camera_detected_objects{camera="person-all",class="person"}`, 1)
		atLeast(`camera_detected_objects{camera="person-all",class="dog"}`, 1)
		for _, name := range []string{"dog", "giraffe", "eagle", "gray"} {
			exactly(fmt.Sprintf(`camera_detected_objects{camera=%q,class="person"}`, name), 0)
			atLeast(fmt.Sprintf(`camera_frames_without_detections_total{camera=%q}`, name), 1)
		}
		exactly(`camera_frames_without_detections_total{camera="person"}`, 0)
		atLeast(`camera_inference_duration_seconds_count{camera="person"}`, 1)
		atLeast(`camera_detection_confidence_bucket{camera="person",le="+Inf"}`, 1)
		exactly(`camera_detector_info{backend="opencv",input_size="320x320",layout="darknet",model="yolo-fastest-1.1.weights",requested_backend="cpu",target="cpu"}`, 1)
		if strings.Contains(metrics, `camera="person",class="dog"`) {
			t.Error("a camera counting persons reported dogs")
		}
	})

	t.Run("promtool", func(t *testing.T) {
		cmd := exec.Command("promtool", "check", "metrics")
		cmd.Stdin = strings.NewReader(metrics)
		if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	})

	t.Run("reload to another model", func(t *testing.T) {
		body, err := filepath.Abs(bodyModel)
		if err != nil {
			t.Fatal(err)
		}
		next := strings.NewReplacer(
			mustAbs(t, cocoModel)+"/yolo-fastest-1.1.weights", body+"/yolo-fastest-1.1_body.weights",
			mustAbs(t, cocoModel)+"/yolo-fastest-1.1.cfg", body+"/yolo-fastest-1.1_body.cfg",
			mustAbs(t, cocoModel)+"/coco.names", body+"/body.names",
			"classes: [person]", "classes: [body]",
		).Replace(strings.Split(cfg, "  - name: person-all")[0])
		// A model that does not load is refused, and the running one stays.
		broken := strings.Replace(next, "input_size: 320", "input_size: 100", 1)
		os.WriteFile(e.config, []byte(broken), 0o600) //nolint:errcheck // read back by the reload
		if err := postReload(e); err == nil || !strings.Contains(err.Error(), "yolo-fastest-1.1_body.weights") {
			t.Errorf("reload with a bad input size: %v, want an error naming the model", err)
		}
		if m, _ := e.get("/metrics", nil); !strings.Contains(m, `model="yolo-fastest-1.1.weights"`) {
			t.Error("a failed reload replaced the running detector")
		}

		os.WriteFile(e.config, []byte(next), 0o600) //nolint:errcheck // read back by the reload
		if err := postReload(e); err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, "the body model to find the person", 30*time.Second, func() bool {
			m, _ := e.get("/metrics", nil)
			v, _ := sample(m, `camera_detected_objects{camera="person",class="body"}`)
			return v >= 1 && strings.Contains(m, `model="yolo-fastest-1.1_body.weights"`)
		})
	})
}

func mustAbs(t testing.TB, path string) string {
	t.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

func postReload(e *exporter) error {
	req, err := http.NewRequest(http.MethodPost, "http://"+e.addr+"/-/reload", nil)
	if err != nil {
		return err
	}
	_, err = do(req)
	return err
}

// TestBadModelFailsAtStart checks that a model that cannot run stops the
// exporter at start with the path and the reason: an exit code, never a
// signal from an uncaught C++ exception.
func TestBadModelFailsAtStart(t *testing.T) {
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "corrupt.weights")
	junk := make([]byte, 4096)
	for i := range junk {
		junk[i] = byte(i * 7)
	}
	if err := os.WriteFile(corrupt, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	coco := mustAbs(t, cocoModel)
	for _, tc := range []struct {
		name  string
		block string
		want  []string
	}{
		{
			name:  "corrupt weights",
			block: strings.Replace(testutil.DetectorBlock(t, ""), coco+"/yolo-fastest-1.1.weights", corrupt, 1),
			want:  []string{corrupt},
		},
		{
			name:  "wrong input size",
			block: strings.Replace(testutil.DetectorBlock(t, ""), "input_size: 320", "input_size: 100", 1),
			want:  []string{coco + "/yolo-fastest-1.1.weights", "100x100"},
		},
		{
			name:  "missing model",
			block: strings.Replace(testutil.DetectorBlock(t, ""), "yolo-fastest-1.1.weights", "missing.weights", 1),
			want:  []string{coco + "/missing.weights", "no such file"},
		},
		{
			name:  "cuda without cuda",
			block: testutil.DetectorBlock(t, "  backend: cuda\n"),
			want:  []string{"cuda", "allow_cpu_fallback"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if strings.HasPrefix(tc.name, "cuda") && dnn.CUDADevices() > 0 {
				t.Skip("this machine has CUDA")
			}
			cfg := filepath.Join(t.TempDir(), "exporter.yml")
			if err := os.WriteFile(cfg, []byte(tc.block+"cameras: []\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{{"--web.listen-address=" + testutil.FreeAddr(t)}, {"--config.check"}} {
				cmd := exec.Command(binary, append([]string{"--config.file=" + cfg}, args...)...)
				done := make(chan struct{})
				var out []byte
				var err error
				go func() { out, err = cmd.CombinedOutput(); close(done) }()
				select {
				case <-done:
				case <-time.After(30 * time.Second):
					cmd.Process.Kill() //nolint:errcheck // the test fails anyway
					t.Fatalf("%v: still running, want it to fail at start", args)
				}
				var exit *exec.ExitError
				if !errors.As(err, &exit) {
					t.Fatalf("%v: %v, want exit code 1\n%s", args, err, out)
				}
				if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					t.Fatalf("%v: killed by %v, want a clean exit\n%s", args, ws.Signal(), out)
				}
				if exit.ExitCode() != 1 {
					t.Errorf("%v: exit code %d, want 1\n%s", args, exit.ExitCode(), out)
				}
				for _, want := range tc.want {
					if !strings.Contains(string(out), want) {
						t.Errorf("%v: output lacks %q:\n%s", args, want, out)
					}
				}
			}
		})
	}
}

// TestCUDAFallback checks that a CPU fallback the user allowed is taken
// and reported, on this machine without CUDA.
func TestCUDAFallback(t *testing.T) {
	if dnn.CUDADevices() > 0 {
		t.Skip("this machine has CUDA")
	}
	e := startExporter(t, testutil.DetectorBlock(t, "  backend: cuda_fp16\n  allow_cpu_fallback: true\n")+"cameras: []\n")
	m, err := e.get("/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := `camera_detector_info{backend="opencv",input_size="320x320",layout="darknet",model="yolo-fastest-1.1.weights",requested_backend="cuda_fp16",target="cpu"} 1`
	if !strings.Contains(m, want+"\n") {
		t.Errorf("missing %s in:\n%s", want, m)
	}
	if logs := e.logs.String(); !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "cuda_fp16") {
		t.Errorf("the fallback is not logged as a warning:\n%s", logs)
	}
}

// TestMakeModels runs `make models` against a local mirror of the upstream
// repository's layout, built from the shared data: good files are fetched and
// verified, a file that fails its sha256 is refused and not kept.
func TestMakeModels(t *testing.T) {
	mirror := t.TempDir()
	link := func(upstream, shared string) {
		t.Helper()
		path := filepath.Join(mirror, upstream)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(mustAbs(t, filepath.Join(sharedModels, shared)), path); err != nil {
			t.Fatal(err)
		}
	}
	link("LICENSE", "yolo-fastest-1.1/LICENSE")
	for _, f := range []string{"yolo-fastest-1.1.cfg", "yolo-fastest-1.1.weights", "coco.names"} {
		link("ModelZoo/yolo-fastest-1.1_coco/"+f, "yolo-fastest-1.1/"+f)
	}
	for _, f := range []string{"yolo-fastest-1.1_body.cfg", "yolo-fastest-1.1_body.weights", "body.names"} {
		link("ModelZoo/yolo-fastest-1.1_body/"+f, "yolo-fastest-1.1-body/"+f)
	}
	makeModels := func(dest string) ([]byte, error) {
		cmd := exec.Command("make", "--no-print-directory", "models", "MODELS_URL=file://"+mirror, "MODELS_DEST="+dest)
		cmd.Dir = repoRoot
		return cmd.CombinedOutput()
	}

	dest := t.TempDir()
	if out, err := makeModels(dest); err != nil {
		t.Fatalf("make models: %v\n%s", err, out)
	}
	for _, f := range []string{"yolo-fastest-1.1/yolo-fastest-1.1.weights", "yolo-fastest-1.1-body/body.names"} {
		got, err := os.ReadFile(filepath.Join(dest, f))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(mirror, strings.NewReplacer(
			"yolo-fastest-1.1/", "ModelZoo/yolo-fastest-1.1_coco/", "yolo-fastest-1.1-body/", "ModelZoo/yolo-fastest-1.1_body/").Replace(f)))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s differs from upstream", f)
		}
	}

	// Upstream serving something else is refused.
	tampered := filepath.Join(mirror, "ModelZoo/yolo-fastest-1.1_coco/coco.names")
	if err := os.Remove(tampered); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tampered, []byte("person\nworker\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dest = t.TempDir()
	out, err := makeModels(dest)
	if err == nil || !strings.Contains(string(out), "coco.names: sha256 mismatch") {
		t.Errorf("make models with a tampered file: %v, want a sha256 mismatch\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dest, "yolo-fastest-1.1/coco.names")); !os.IsNotExist(err) {
		t.Errorf("tampered file kept: %v", err)
	}
}
