package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"

	"github.com/camera-exporter/camera_exporter/detector"
)

func TestLoadFull(t *testing.T) {
	cfg, err := Load("testdata/full.yml")
	if err != nil {
		t.Fatal(err)
	}

	wantDefaults := options(TransportUDP, 5*time.Second, 0.2, DecodeKeyframe, detect(true, "person"))
	if got := cfg.Defaults; !equalOptions(got, wantDefaults) {
		t.Errorf("defaults = %s, want %s", describe(got), describe(wantDefaults))
	}

	tests := []struct {
		name, streamURL, redactedURL, user, pass string
		options                                  CameraOptions
	}{
		{
			name:        "gate-north",
			streamURL:   "rtsp://10.0.0.5:554/stream1",
			redactedURL: "rtsp://10.0.0.5:554/stream1",
			user:        "viewer",
			pass:        "file-pw",
			options:     options(TransportUDP, 5*time.Second, 0.2, DecodeKeyframe, detect(true, "person")),
		},
		{
			name:        "yard",
			streamURL:   "rtsps://cam.example.com/live?channel=1",
			redactedURL: "rtsps://<secret>@cam.example.com/live?channel=1",
			user:        "admin",
			pass:        "p@ss",
			// An explicit dark_threshold of 0 is kept, not defaulted.
			options: withMaxPicturePixels(options(TransportTCP, 2*time.Second, 0, DecodeAll, detect(true, "person", "car")), 8_000_000),
		},
		{
			name:        "lobby_1",
			streamURL:   "rtsp://10.0.0.7/h264",
			redactedURL: "rtsp://10.0.0.7/h264",
			user:        "ops",
			pass:        "inline-pw",
			options:     options(TransportUDP, 5*time.Second, 0.2, DecodeKeyframe, detect(false, "person")),
		},
	}
	if len(cfg.Cameras) != len(tests) {
		t.Fatalf("got %d cameras, want %d", len(cfg.Cameras), len(tests))
	}
	for i, test := range tests {
		c := cfg.Cameras[i]
		if c.Name != test.name {
			t.Errorf("camera %d: name = %q, want %q", i, c.Name, test.name)
		}
		if got := c.StreamURL(); got != test.streamURL {
			t.Errorf("%s: StreamURL() = %q, want %q", test.name, got, test.streamURL)
		}
		if got := c.RedactedURL(); got != test.redactedURL {
			t.Errorf("%s: RedactedURL() = %q, want %q", test.name, got, test.redactedURL)
		}
		if user, pass := c.Credentials(); user != test.user || pass != test.pass {
			t.Errorf("%s: Credentials() = %q, %q, want %q, %q", test.name, user, pass, test.user, test.pass)
		}
		if !equalOptions(c.CameraOptions, test.options) {
			t.Errorf("%s: options = %s, want %s", test.name, describe(c.CameraOptions), describe(test.options))
		}
	}
	// Relative to the configuration file, not to the working directory.
	if got, want := cfg.Cameras[0].PasswordFile, filepath.Join("testdata", "gate-north.pass"); got != want {
		t.Errorf("password_file = %q, want %q", got, want)
	}

	d := cfg.Detector
	if d == nil {
		t.Fatal("no detector")
	}
	swapRB := true
	want := Detector{
		Model: "testdata/models/tiny.weights", Config: "testdata/models/tiny.cfg", Labels: "testdata/models/tiny.names",
		Layout: "darknet", InputSize: 320, Resize: "stretch", Scale: 1.0 / 255, Mean: []float64{0, 0, 0}, SwapRB: &swapRB,
		Confidence: 0.4, NMSThreshold: 0.5, Backend: detector.BackendCUDA, AllowCPUFallback: true, Nets: 2,
	}
	// Equal compares the labels and model files as loaded too.
	want.classes, want.files = d.classes, d.files
	if !d.Equal(&want) {
		t.Errorf("detector = %+v, want %+v", *d, want)
	}
	if got, want := d.Classes(), []string{"person", "car", "dog"}; !slices.Equal(got, want) {
		t.Errorf("classes = %q, want %q", got, want)
	}
	if len(d.files) != 2 {
		t.Errorf("got %d model files, want 2", len(d.files))
	}
}

func TestDetectorOptions(t *testing.T) {
	cfg, err := Load("testdata/full.yml")
	if err != nil {
		t.Fatal(err)
	}
	swapRB := true
	want := detector.Options{
		Model: "testdata/models/tiny.weights", Config: "testdata/models/tiny.cfg", Labels: []string{"person", "car", "dog"},
		Layout: detector.LayoutDarknet, InputWidth: 320, InputHeight: 320, Resize: detector.ResizeStretch,
		Scale: 1.0 / 255, Mean: []float64{0, 0, 0}, SwapRB: &swapRB,
		Confidence: 0.4, NMSThreshold: 0.5, Backend: detector.BackendCUDA, AllowCPUFallback: true, Nets: 2,
	}
	o := cfg.Detector.Options()
	if !reflect.DeepEqual(o, want) {
		t.Errorf("Options() = %+v, want %+v", o, want)
	}
	if err := o.Validate(); err != nil {
		t.Errorf("Options().Validate(): %v", err)
	}
	// The options are a copy: changing them leaves the configuration alone.
	o.Labels[0], o.Mean[0], *o.SwapRB = "x", 1, false
	if cfg.Detector.Classes()[0] != "person" || cfg.Detector.Mean[0] != 0 || !*cfg.Detector.SwapRB {
		t.Errorf("changing Options() changed the configuration: %+v", *cfg.Detector)
	}

	// What is left out is a default of package detector; auto is an
	// inferred layout.
	d := parseDetector(t, "detector:\n  model: testdata/models/tiny.weights\n  labels: testdata/models/tiny.names\n  input_size: 416\n  mean: [127.5]\n")
	want = detector.Options{
		Model: "testdata/models/tiny.weights", Labels: []string{"person", "car", "dog"}, InputWidth: 416, InputHeight: 416,
		Mean: []float64{127.5}, Confidence: detector.DefaultConfidence, NMSThreshold: detector.DefaultNMSThreshold,
		Backend: detector.BackendCPU, Nets: detector.DefaultNets,
	}
	if o := d.Options(); !reflect.DeepEqual(o, want) {
		t.Errorf("Options() = %+v, want %+v", o, want)
	}
}

func TestReferenceOptions(t *testing.T) {
	cfg, err := Load("testdata/reference.yml")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("testdata", "references")
	for _, tc := range []struct {
		camera      int
		file        string
		calibration time.Duration
		window      time.Duration
	}{
		{0, filepath.Join(dir, "gate.json"), 24 * time.Hour, time.Hour},
		{1, filepath.Join(dir, "yard.json"), 24 * time.Hour, 30 * time.Minute},
	} {
		c := cfg.Cameras[tc.camera]
		if got := c.ReferenceFile(); got != tc.file {
			t.Errorf("%s: reference file %q, want %q", c.Name, got, tc.file)
		}
		if got := time.Duration(c.Reference.Calibration); got != tc.calibration {
			t.Errorf("%s: calibration %s, want %s", c.Name, got, tc.calibration)
		}
		if got := time.Duration(c.Reference.Window); got != tc.window {
			t.Errorf("%s: window %s, want %s", c.Name, got, tc.window)
		}
	}
}

func TestDetectorDefaults(t *testing.T) {
	cfg, err := Parse([]byte("detector:\n  model: testdata/models/tiny.weights\n  labels: testdata/models/tiny.names\n  input_size: 416\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Detector
	if d.Layout != LayoutAuto || d.Confidence != 0.25 || d.NMSThreshold != 0.45 || d.Backend != detector.BackendCPU || d.Nets != 1 ||
		d.Resize != "" || d.Scale != 0 || d.Mean != nil || d.SwapRB != nil || d.AllowCPUFallback {
		t.Errorf("detector defaults = %+v", *d)
	}

	// Without a detector block there is none; cameras still detect by
	// default, should one be added.
	cfg, err = Parse([]byte("cameras:\n  - name: a\n    url: rtsp://h/\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Detector != nil {
		t.Errorf("detector = %+v, want none", cfg.Detector)
	}
	if e := cfg.Cameras[0].Detect.Enabled; e == nil || !*e {
		t.Error("camera does not detect by default")
	}
}

func TestDetectorEqual(t *testing.T) {
	base := "detector:\n  model: testdata/models/tiny.weights\n  labels: testdata/models/tiny.names\n  input_size: 320\n"
	otherLabels := filepath.Join(t.TempDir(), "other.names")
	if err := os.WriteFile(otherLabels, []byte("person\nbicycle\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, other string
		want        bool
	}{
		{"identical", base, true},
		{"defaults spelled out", base + "  layout: auto\n  confidence: 0.25\n  nms_threshold: 0.45\n  backend: cpu\n  nets: 1\n", true},
		{"other input size", strings.Replace(base, "320", "416", 1), false},
		{"other labels", strings.Replace(base, "testdata/models/tiny.names", otherLabels, 1), false},
		{"other backend", base + "  backend: cuda\n", false},
		{"other mean", base + "  mean: [1]\n", false},
		{"swap_rb set", base + "  swap_rb: false\n", false},
		{"more nets", base + "  nets: 2\n", false},
	}
	a := parseDetector(t, base)
	for _, test := range tests {
		b := parseDetector(t, test.other)
		if got := a.Equal(b); got != test.want {
			t.Errorf("%s: Equal() = %v, want %v", test.name, got, test.want)
		}
	}
	if a.Equal(nil) || !(*Detector)(nil).Equal(nil) {
		t.Error("Equal() is wrong for no detector")
	}

	// A model replaced in place is loaded again on reload.
	dir := t.TempDir()
	model := filepath.Join(dir, "m.weights")
	if err := os.WriteFile(model, []byte("v1"), 0o600); err != nil {
		t.Fatal(err)
	}
	in := strings.Replace(base, "testdata/models/tiny.weights", model, 1)
	before := parseDetector(t, in)
	if err := os.WriteFile(model, []byte("version 2"), 0o600); err != nil {
		t.Fatal(err)
	}
	if before.Equal(parseDetector(t, in)) {
		t.Error("Equal() does not notice a replaced model file")
	}
}

func parseDetector(t *testing.T, in string) *Detector {
	t.Helper()
	cfg, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Detector
}

func TestBuiltinDefaults(t *testing.T) {
	cfg, err := Parse([]byte("cameras:\n  - name: a\n    url: rtsp://h/\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := options(TransportTCP, 10*time.Second, 0.15, DecodeKeyframe, detect(true))
	for _, got := range []CameraOptions{cfg.Defaults, cfg.Cameras[0].CameraOptions} {
		if !equalOptions(got, want) {
			t.Errorf("options = %s, want %s", describe(got), describe(want))
		}
	}
	// Each camera has its own threshold.
	if cfg.Defaults.DarkThreshold == cfg.Cameras[0].DarkThreshold {
		t.Error("camera shares its dark_threshold pointer with the defaults")
	}
}

// TestFrozenOverlay reads the regions where cameras draw an overlay
// besides the picture's edges: a camera's own, or the defaults'.
func TestFrozenOverlay(t *testing.T) {
	cfg, err := Parse([]byte(`defaults:
  frozen_overlay:
    - {left: 0.4, top: 0.45, right: 0.6, bottom: 0.55}
cameras:
  - name: a
    url: rtsp://h/
  - name: b
    url: rtsp://h/
    frozen_overlay:
      - {left: 0, top: 0.3, right: 0.25, bottom: 0.4}
      - {left: 0.75, top: 0.6, right: 1, bottom: 0.7}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]Region{
		"a": {{0.4, 0.45, 0.6, 0.55}},
		"b": {{0, 0.3, 0.25, 0.4}, {0.75, 0.6, 1, 0.7}},
	}
	for _, c := range cfg.Cameras {
		if !slices.Equal(c.FrozenOverlay, want[c.Name]) {
			t.Errorf("camera %s: frozen_overlay %v, want %v", c.Name, c.FrozenOverlay, want[c.Name])
		}
	}
	if a, b := cfg.Cameras[0], cfg.Cameras[1]; a.Equal(b) || !a.Equal(a) {
		t.Error("Equal does not tell the cameras' frozen_overlay apart")
	}
}

func TestNoCameras(t *testing.T) {
	for _, in := range []string{"", "# nothing yet\n", "cameras: []\n", "cameras:\n"} {
		cfg, err := Parse([]byte(in))
		if err != nil {
			t.Errorf("Parse(%q): %v", in, err)
			continue
		}
		if len(cfg.Cameras) != 0 {
			t.Errorf("Parse(%q): got %d cameras, want none", in, len(cfg.Cameras))
		}
		if cfg.Defaults.Transport != TransportTCP {
			t.Errorf("Parse(%q): default transport = %q, want %q", in, cfg.Defaults.Transport, TransportTCP)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // the whole error
	}{
		{
			name: "unknown camera field",
			in: `cameras:
  - name: a
    url: rtsp://h/
    pasword: x
`,
			want: `line 4: field "pasword" not found in camera`,
		},
		{
			name: "unknown defaults field",
			in:   "defaults:\n  name: a\n",
			want: `line 2: field "name" not found in defaults`,
		},
		{
			name: "unknown top-level field",
			in:   "camera: []\n",
			want: `line 1: field "camera" not found in config`,
		},
		{
			name: "syntax error",
			in:   "cameras:\n  - name: a\n    url: rtsp://h: x\n",
			want: "line 3: mapping values are not allowed in this context",
		},
		{
			name: "tab indentation",
			in:   "cameras:\n\t- name: a\n",
			want: "line 2: found character that cannot start any token",
		},
		{
			name: "duplicate key",
			in:   "cameras:\n  - name: a\n    url: rtsp://h/\n    url: rtsp://h/\n",
			want: `line 4: mapping key "url" already defined at line 3`,
		},
		{
			name: "wrong type",
			in:   "cameras:\n  - name: a\n    url: rtsp://h/\n    dark_threshold: dim\n",
			want: "line 4: cannot unmarshal !!str into float64",
		},
		{
			name: "timeout without unit",
			in:   "cameras:\n  - name: a\n    url: rtsp://h/\n    timeout: 10\n",
			want: `line 4: timeout: not a valid duration string: "10"`,
		},
		{
			name: "negative timeout",
			in:   "defaults:\n  timeout: -1s\n",
			want: `line 2: timeout: not a valid duration string: "-1s"`,
		},
		{
			name: "zero timeout",
			in:   "cameras:\n  - name: a\n    url: rtsp://h/\n    timeout: 0s\n",
			want: `line 4: camera "a": timeout 0s: must be greater than 0`,
		},
		{
			name: "bad transport",
			in:   "cameras:\n  - name: a\n    url: rtsp://h/\n    transport: tcpp\n",
			want: `line 4: camera "a": transport "tcpp": must be one of tcp, udp, auto`,
		},
		{
			name: "bad auth",
			in:   "cameras:\n  - name: a\n    url: rtsp://h/\n    auth: basic\n",
			want: `line 4: camera "a": auth "basic": must be one of any, digest`,
		},
		{
			name: "bad default auth",
			in:   "defaults:\n  auth: Digest\n",
			want: `line 2: defaults: auth "Digest": must be one of any, digest`,
		},
		{
			name: "bad default transport",
			in:   "defaults:\n  transport: TCP\n",
			want: `line 2: defaults: transport "TCP": must be one of tcp, udp, auto`,
		},
		{
			name: "bad decode",
			in:   "cameras:\n  - name: a\n    url: rtsp://h/\n    decode: every\n",
			want: `line 4: camera "a": decode "every": must be one of keyframe, all`,
		},
		{
			name: "dark_threshold above 1",
			in:   "cameras:\n  - name: a\n    url: rtsp://h/\n    dark_threshold: 1.5\n",
			want: `line 4: camera "a": dark_threshold 1.5: must be between 0 and 1`,
		},
		{
			name: "negative default dark_threshold",
			in:   "defaults:\n  dark_threshold: -0.1\n",
			want: `line 2: defaults: dark_threshold -0.1: must be between 0 and 1`,
		},
		{
			name: "zero max_picture_pixels",
			in:   "cameras:\n  - name: a\n    url: rtsp://h/\n    max_picture_pixels: 0\n",
			want: `line 4: camera "a": max_picture_pixels 0: must be between 1 and 40000000`,
		},
		{
			name: "negative default max_picture_pixels",
			in:   "defaults:\n  max_picture_pixels: -1\n",
			want: `line 2: defaults: max_picture_pixels -1: must be between 1 and 40000000`,
		},
		{
			name: "max_picture_pixels above the ceiling",
			in:   "cameras:\n  - name: a\n    url: rtsp://h/\n    max_picture_pixels: 67108864\n",
			want: `line 4: camera "a": max_picture_pixels 67108864: must be between 1 and 40000000`,
		},
		{
			name: "max_picture_pixels with a unit",
			in:   "cameras:\n  - name: a\n    url: rtsp://h/\n    max_picture_pixels: 12MP\n",
			want: "line 4: cannot unmarshal !!str into int64",
		},
		{
			name: "frozen_overlay region inside out",
			in:   "cameras:\n  - name: a\n    url: rtsp://h/\n    frozen_overlay:\n      - {left: 0.5, top: 0, right: 0.4, bottom: 0.1}\n",
			want: `line 4: camera "a": frozen_overlay[0] left 0.5, top 0, right 0.4, bottom 0.1: must be fractions of the picture, 0 <= left < right <= 1 and 0 <= top < bottom <= 1`,
		},
		{
			name: "frozen_overlay region in pixels",
			in:   "defaults:\n  frozen_overlay:\n    - {left: 0, top: 0, right: 0.1, bottom: 0.1}\n    - {left: 10, top: 20, right: 200, bottom: 60}\n",
			want: `line 2: defaults: frozen_overlay[1] left 10, top 20, right 200, bottom 60: must be fractions of the picture, 0 <= left < right <= 1 and 0 <= top < bottom <= 1`,
		},
		{
			name: "frozen_overlay region field misspelt",
			in:   "cameras:\n  - name: a\n    url: rtsp://h/\n    frozen_overlay:\n      - {left: 0, top: 0, rigth: 0.4, bottom: 0.1}\n",
			want: `line 5: field "rigth" not found in frozen_overlay`,
		},
		{
			name: "NaN dark_threshold",
			in:   "defaults:\n  dark_threshold: .nan\n",
			want: `line 2: defaults: dark_threshold NaN: must be between 0 and 1`,
		},
		{
			name: "missing name",
			in:   "cameras:\n  - url: rtsp://h/\n",
			want: `line 2: camera #1: missing name`,
		},
		{
			name: "bad name",
			in:   "cameras:\n  - url: rtsp://h/\n    name: gate north\n",
			want: `line 3: camera "gate north": name "gate north": must match ^[a-zA-Z0-9_-]+$`,
		},
		{
			name: "duplicate name",
			in:   "cameras:\n  - name: a\n    url: rtsp://h/\n  - name: b\n    url: rtsp://h/\n  - url: rtsp://h/\n    name: a\n",
			want: `line 7: camera "a": name already used at line 2`,
		},
		{
			name: "missing url",
			in:   "cameras:\n  - name: a\n",
			want: `line 2: camera "a": missing url`,
		},
		{
			name: "bad scheme",
			in:   "cameras:\n  - name: a\n    url: http://h/\n",
			want: `line 3: camera "a": url: scheme must be rtsp or rtsps`,
		},
		{
			name: "missing host",
			in:   "cameras:\n  - name: a\n    url: rtsp:///stream\n",
			want: `line 3: camera "a": url: missing host`,
		},
		{
			name: "unparsable url",
			in:   "cameras:\n  - name: a\n    url: rtsp://h:port/\n",
			want: `line 3: camera "a": url: not a valid URL; special characters in the user name or password must be percent-encoded`,
		},
		{
			name: "password and password_file",
			in:   "cameras:\n  - name: a\n    url: rtsp://h/\n    password: x\n    password_file: testdata/gate-north.pass\n",
			want: `line 5: camera "a": password and password_file are mutually exclusive`,
		},
		{
			name: "credentials in url and fields",
			in:   "cameras:\n  - name: a\n    url: rtsp://u:p@h/\n    username: u\n",
			want: `line 3: camera "a": url: has credentials, and so must not be combined with username, password or password_file`,
		},
		{
			name: "unknown detector field",
			in:   "detector:\n  modle: x\n",
			want: `line 2: field "modle" not found in detector`,
		},
		{
			name: "unknown detect field",
			in:   "defaults:\n  detect:\n    class: [person]\n",
			want: `line 3: field "class" not found in detect`,
		},
		{
			name: "detector without model, labels and input_size",
			in:   "detector:\n  backend: cpu\n",
			want: "line 2: detector: missing model\nline 2: detector: missing labels\n" +
				"line 2: detector: input_size 0: must be the network's input width and height, 1 to 4096 (e.g. 320 for Yolo-Fastest, 640 for YOLOv8)",
		},
		{
			name: "missing model file",
			in:   detectorBlock + "  config: testdata/models/missing.cfg\n",
			want: `line 5: detector: config: stat testdata/models/missing.cfg: no such file or directory`,
		},
		{
			name: "missing labels file",
			in:   strings.Replace(detectorBlock, "tiny.names", "missing.names", 1),
			want: `line 3: detector: labels: stat testdata/models/missing.names: no such file or directory`,
		},
		{
			name: "labels with a blank line",
			in:   strings.Replace(detectorBlock, "testdata/models/tiny.names", "testdata/models/gap.names", 1),
			want: `line 3: detector: labels: testdata/models/gap.names:2: blank line; line i must name class i-1`,
		},
		{
			name: "bad layout",
			in:   detectorBlock + "  layout: yolov9\n",
			want: `line 5: detector: layout "yolov9": must be one of auto, darknet, yolov5, yolov8, ssd`,
		},
		{
			name: "bad resize",
			in:   detectorBlock + "  resize: crop\n",
			want: `line 5: detector: resize "crop": must be one of letterbox, stretch`,
		},
		{
			name: "zero scale",
			in:   detectorBlock + "  scale: 0\n",
			want: `line 5: detector: scale 0: must be greater than 0`,
		},
		{
			name: "two means",
			in:   detectorBlock + "  mean: [1, 2]\n",
			want: `line 5: detector: mean: must be one value, or three in B, G, R order`,
		},
		{
			name: "confidence above 1",
			in:   detectorBlock + "  confidence: 40\n",
			want: `line 5: detector: confidence 40: must be greater than 0 and at most 1`,
		},
		{
			name: "zero nms_threshold",
			in:   detectorBlock + "  nms_threshold: 0\n",
			want: `line 5: detector: nms_threshold 0: must be greater than 0 and at most 1`,
		},
		{
			name: "bad backend",
			in:   detectorBlock + "  backend: gpu\n",
			want: `line 5: detector: backend "gpu": must be one of cpu, cuda, cuda_fp16`,
		},
		{
			name: "empty mean",
			in:   detectorBlock + "  mean: []\n",
			want: `line 5: detector: mean: must be one value, or three in B, G, R order`,
		},
		{
			name: "input_size too large",
			in:   strings.Replace(detectorBlock, "320", "5000", 1),
			want: `line 4: detector: input_size 5000: must be the network's input width and height, 1 to 4096 (e.g. 320 for Yolo-Fastest, 640 for YOLOv8)`,
		},
		{
			name: "several detector errors",
			in:   "detector:\n  labels: testdata/models/tiny.names\n  input_size: 320\n  layout: x\n  confidence: 0\n  nets: 65\n",
			want: "line 2: detector: missing model\n" +
				`line 4: detector: layout "x": must be one of auto, darknet, yolov5, yolov8, ssd` + "\n" +
				"line 6: detector: nets 65: must be 1 to 64\n" +
				"line 5: detector: confidence 0: must be greater than 0 and at most 1",
		},
		{
			name: "zero nets",
			in:   detectorBlock + "  nets: 0\n",
			want: `line 5: detector: nets 0: must be 1 to 64`,
		},
		{
			name: "unknown class",
			in:   detectorBlock + "cameras:\n  - name: a\n    url: rtsp://h/\n    detect:\n      classes: [person, persn]\n",
			want: `line 8: camera "a": detect.classes: "persn" is not a class of testdata/models/tiny.names`,
		},
		{
			name: "unknown default class",
			in:   detectorBlock + "defaults:\n  detect:\n    classes: [cat]\n",
			want: `line 6: defaults: detect.classes: "cat" is not a class of testdata/models/tiny.names`,
		},
		{
			name: "class listed twice",
			in:   "cameras:\n  - name: a\n    url: rtsp://h/\n    detect:\n      classes: [person, person]\n",
			want: `line 4: camera "a": detect.classes: "person" listed twice`,
		},
		{
			name: "calibration without a directory",
			in:   "cameras:\n  - name: a\n    url: rtsp://h/\n    reference:\n      calibration: 24h\n",
			want: `line 4: camera "a": reference.calibration needs reference.dir, where the learned reference is saved`,
		},
		{
			name: "missing password_file",
			in:   "cameras:\n  - name: a\n    url: rtsp://h/\n    password_file: testdata/missing.pass\n",
			want: `line 4: camera "a": password_file: stat testdata/missing.pass: no such file or directory`,
		},
		{
			// Would block, or never end.
			name: "password_file a device",
			in:   "cameras:\n  - name: a\n    url: rtsp://h/\n    password_file: /dev/zero\n",
			want: `line 4: camera "a": password_file: /dev/zero: not a regular file but a character device`,
		},
		{
			name: "password_file too large",
			in:   "cameras:\n  - name: a\n    url: rtsp://h/\n    password_file: ../README.md\n",
			want: `line 4: camera "a": password_file: ../README.md: larger than the 4 KiB that a password file may hold`,
		},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			_, err := Parse([]byte(test.in))
			if err == nil {
				t.Fatalf("got no error, want %q", test.want)
			}
			if err.Error() != test.want {
				t.Errorf("got error\n\t%q\nwant\n\t%q", err, test.want)
			}
		})
	}
}

// detectorBlock is a valid detector configuration for Parse from this
// directory.
const detectorBlock = "detector:\n  model: testdata/models/tiny.weights\n  labels: testdata/models/tiny.names\n  input_size: 320\n"

func TestLoadErrorsNameFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "exporter.yml")
	in := `defaults:
  decode: none
cameras:
  - name: a
    url: ftp://h/
  - name: b
    url: rtsp://h/
    transport: tcpp
    dark_threshold: 2
`
	if err := os.WriteFile(path, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil {
		t.Fatal("got no error")
	}
	// All errors are reported, each with the file name.
	want := strings.Join([]string{
		path + `:2: defaults: decode "none": must be one of keyframe, all`,
		path + `:5: camera "a": url: scheme must be rtsp or rtsps`,
		path + `:8: camera "b": transport "tcpp": must be one of tcp, udp, auto`,
		path + `:9: camera "b": dark_threshold 2: must be between 0 and 1`,
	}, "\n")
	if err.Error() != want {
		t.Errorf("got error\n%s\nwant\n%s", err, want)
	}

	if err := os.WriteFile(path, []byte("cameras:\n  - nmae: a\n  - name: b\n    urls: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(path)
	want = path + `:2: field "nmae" not found in camera` + "\n" + path + `:4: field "urls" not found in camera`
	if err == nil || err.Error() != want {
		t.Errorf("got error\n%v\nwant\n%s", err, want)
	}

	missing := filepath.Join(t.TempDir(), "missing.yml")
	if _, err := Load(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("Load(%q) = %v, want an error naming the file", missing, err)
	}
}

// TestCredentialsNotDisclosed checks that no error and no redacted
// configuration discloses a password, wherever it was configured.
func TestCredentialsNotDisclosed(t *testing.T) {
	const secret = "Zq9Leak"
	passwordFile := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(passwordFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	invalid := map[string]string{
		"url with bad transport": "cameras:\n  - name: a\n    url: rtsp://u:" + secret + "@h/\n    transport: x\n",
		"url with bad scheme":    "cameras:\n  - name: a\n    url: http://u:" + secret + "@h/\n",
		"url without scheme":     "cameras:\n  - name: a\n    url: u:" + secret + "@h/\n",
		"url without host":       "cameras:\n  - name: a\n    url: rtsp://u:" + secret + "@/x\n",
		"unescaped slash":        "cameras:\n  - name: a\n    url: rtsp://u:" + secret + "/x@h/\n",
		"unescaped hash":         "cameras:\n  - name: a\n    url: rtsp://u:" + secret + "#x@h/\n",
		"bad escape":             "cameras:\n  - name: a\n    url: rtsp://u:" + secret + "%zz@h/\n",
		"url and username":       "cameras:\n  - name: a\n    url: rtsp://u:" + secret + "@h/\n    username: u\n",
		"duplicate url":          "cameras:\n  - name: a\n    url: rtsp://h/\n    url: rtsp://u:" + secret + "@h/\n",
		"password and file":      "cameras:\n  - name: a\n    url: rtsp://h/\n    password: " + secret + "\n    password_file: " + passwordFile + "\n",
		"file and bad decode":    "cameras:\n  - name: a\n    url: rtsp://h/\n    password_file: " + passwordFile + "\n    decode: x\n",
		"password misplaced":     "cameras:\n  - name: a\n    url: rtsp://h/\n    dark_threshold: " + secret + "\n",
		"camera as a scalar":     "cameras:\n  - " + secret + "\n",
		"misspelled password":    "cameras:\n  - name: a\n    url: rtsp://h/\n    pasword: " + secret + "\n",
	}
	for name, in := range invalid {
		_, err := Parse([]byte(in))
		if err == nil {
			t.Errorf("%s: got no error", name)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: error discloses the password: %v", name, err)
		}
	}

	cfg, err := Parse([]byte(`cameras:
  - name: in-url
    url: rtsp://u:` + secret + `@h/
  - name: in-field
    url: rtsp://h/
    username: u
    password: ` + secret + `
  - name: in-file
    url: rtsp://h/
    password_file: ` + passwordFile + `
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cfg.Cameras {
		if _, pass := c.Credentials(); pass != secret {
			t.Errorf("%s: password = %q, want %q", c.Name, pass, secret)
		}
	}
	defer func(old bool) { config.MarshalSecretValue = old }(config.MarshalSecretValue)
	for _, marshalSecrets := range []bool{false, true} {
		config.MarshalSecretValue = marshalSecrets
		out, err := cfg.Redacted()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(out), secret) {
			t.Errorf("with MarshalSecretValue %v, Redacted() discloses the password:\n%s", marshalSecrets, out)
		}
	}
}

func TestRedacted(t *testing.T) {
	cfg, err := Load("testdata/full.yml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := cfg.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	want := `detector:
    model: testdata/models/tiny.weights
    config: testdata/models/tiny.cfg
    labels: testdata/models/tiny.names
    layout: darknet
    input_size: 320
    resize: stretch
    scale: 0.00392156862745098
    mean:
        - 0
        - 0
        - 0
    swap_rb: true
    confidence: 0.4
    nms_threshold: 0.5
    backend: cuda
    allow_cpu_fallback: true
    nets: 2
defaults:
    transport: udp
    auth: any
    timeout: 5s
    dark_threshold: 0.2
    decode: keyframe
    max_picture_pixels: 12000000
    detect:
        enabled: true
        classes:
            - person
    reference:
        window: 1h
cameras:
    - name: gate-north
      url: rtsp://10.0.0.5:554/stream1
      username: viewer
      password_file: testdata/gate-north.pass
      transport: udp
      auth: any
      timeout: 5s
      dark_threshold: 0.2
      decode: keyframe
      max_picture_pixels: 12000000
      detect:
        enabled: true
        classes:
            - person
      reference:
        window: 1h
    - name: yard
      url: rtsps://<secret>@cam.example.com/live?channel=1
      transport: tcp
      auth: any
      timeout: 2s
      dark_threshold: 0
      decode: all
      max_picture_pixels: 8000000
      detect:
        enabled: true
        classes:
            - person
            - car
      reference:
        window: 1h
    - name: lobby_1
      url: rtsp://10.0.0.7/h264
      username: ops
      password: <secret>
      transport: udp
      auth: any
      timeout: 5s
      dark_threshold: 0.2
      decode: keyframe
      max_picture_pixels: 12000000
      detect:
        enabled: false
        classes:
            - person
      reference:
        window: 1h
`
	if string(out) != want {
		t.Errorf("Redacted() =\n%s\nwant\n%s", out, want)
	}
}

// TestRedactedRoundTrip checks that the effective configuration, when it
// has no secrets to redact, loads into the same configuration.
func TestRedactedRoundTrip(t *testing.T) {
	cfg, err := Parse([]byte(`defaults:
  decode: all
cameras:
  - name: a
    url: rtsp://h:8554/a
    username: u
    password_file: testdata/gate-north.pass
    timeout: 1m
  - name: b
    url: rtsps://h/b
    dark_threshold: 1
`))
	if err != nil {
		t.Fatal(err)
	}
	out, err := cfg.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(out)
	if err != nil {
		t.Fatalf("parsing %s: %v", out, err)
	}
	if !equalOptions(again.Defaults, cfg.Defaults) {
		t.Errorf("defaults = %s, want %s", describe(again.Defaults), describe(cfg.Defaults))
	}
	if len(again.Cameras) != len(cfg.Cameras) {
		t.Fatalf("got %d cameras, want %d", len(again.Cameras), len(cfg.Cameras))
	}
	for i, c := range cfg.Cameras {
		if !again.Cameras[i].Equal(c) {
			t.Errorf("camera %s changed in the round trip:\n%s", c.Name, out)
		}
	}
}

func TestPasswordFileRelativeToWorkingDirectory(t *testing.T) {
	cfg, err := Parse([]byte("cameras:\n  - name: a\n    url: rtsp://h/\n    username: u\n    password_file: testdata/gate-north.pass\n"))
	if err != nil {
		t.Fatal(err)
	}
	// Trailing white space, the newline included, is not part of the password.
	if user, pass := cfg.Cameras[0].Credentials(); user != "u" || pass != "file-pw" {
		t.Errorf("Credentials() = %q, %q, want %q, %q", user, pass, "u", "file-pw")
	}
}

func TestCameraURLs(t *testing.T) {
	tests := []struct {
		camera                 Camera
		streamURL, redactedURL string
		wantUser, wantPass     string
	}{
		{
			camera:      Camera{URL: "rtsp://10.0.0.5:554/stream1"},
			streamURL:   "rtsp://10.0.0.5:554/stream1",
			redactedURL: "rtsp://10.0.0.5:554/stream1",
		},
		{
			camera:      Camera{URL: "rtsp://viewer:s%3Acret@10.0.0.5:554/stream1"},
			streamURL:   "rtsp://10.0.0.5:554/stream1",
			redactedURL: "rtsp://<secret>@10.0.0.5:554/stream1",
			wantUser:    "viewer",
			wantPass:    "s:cret",
		},
		{
			camera:      Camera{URL: "rtsp://viewer@10.0.0.5/stream1"},
			streamURL:   "rtsp://10.0.0.5/stream1",
			redactedURL: "rtsp://<secret>@10.0.0.5/stream1",
			wantUser:    "viewer",
		},
		{
			camera:      Camera{URL: "rtsp://10.0.0.5/s", Username: "u", Password: "p"},
			streamURL:   "rtsp://10.0.0.5/s",
			redactedURL: "rtsp://10.0.0.5/s",
			wantUser:    "u",
			wantPass:    "p",
		},
		{
			// Unparsable: everything might be a secret.
			camera:      Camera{URL: "rtsp://u:p/q@h/"},
			redactedURL: "<secret>",
		},
		{
			// Opaque: the scheme is the user name.
			camera:      Camera{URL: "u:p@h"},
			redactedURL: "<secret>",
		},
	}
	for _, test := range tests {
		c := test.camera
		if got := c.StreamURL(); got != test.streamURL {
			t.Errorf("%q: StreamURL() = %q, want %q", c.URL, got, test.streamURL)
		}
		if got := c.RedactedURL(); got != test.redactedURL {
			t.Errorf("%q: RedactedURL() = %q, want %q", c.URL, got, test.redactedURL)
		}
		if user, pass := c.Credentials(); user != test.wantUser || pass != test.wantPass {
			t.Errorf("%q: Credentials() = %q, %q, want %q, %q", c.URL, user, pass, test.wantUser, test.wantPass)
		}
	}
}

func TestEqual(t *testing.T) {
	dir := t.TempDir()
	otherPasswordFile := filepath.Join(dir, "other.pass")
	if err := os.WriteFile(otherPasswordFile, []byte("other-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	samePasswordFile := filepath.Join(dir, "same.pass")
	if err := os.WriteFile(samePasswordFile, []byte("file-pw"), 0o600); err != nil {
		t.Fatal(err)
	}

	base := "  - name: a\n    url: rtsp://h/s\n    username: u\n    password_file: testdata/gate-north.pass\n"
	tests := []struct {
		name  string
		other string
		want  bool
	}{
		{"identical", base, true},
		{
			"defaults spelled out",
			base + "    transport: tcp\n    auth: any\n    timeout: 10s\n    dark_threshold: 0.15\n    decode: keyframe\n    max_picture_pixels: 12000000\n    detect:\n      classes: []\n",
			true,
		},
		{
			"same password from another file",
			"  - name: a\n    url: rtsp://h/s\n    username: u\n    password_file: " + samePasswordFile + "\n",
			true,
		},
		{
			"same credentials in the url",
			"  - name: a\n    url: rtsp://u:file-pw@h/s\n",
			true,
		},
		{
			"same credentials as password",
			"  - name: a\n    url: rtsp://h/s\n    username: u\n    password: file-pw\n",
			true,
		},
		{"other name", strings.Replace(base, "name: a", "name: b", 1), false},
		{"other url", strings.Replace(base, "rtsp://h/s", "rtsp://h/t", 1), false},
		{"other user", strings.Replace(base, "username: u", "username: v", 1), false},
		{
			"other password",
			"  - name: a\n    url: rtsp://h/s\n    username: u\n    password_file: " + otherPasswordFile + "\n",
			false,
		},
		{"other transport", base + "    transport: udp\n", false},
		{"auth spelled out", base + "    auth: any\n", true},
		{"other auth", base + "    auth: digest\n", false},
		{"other timeout", base + "    timeout: 11s\n", false},
		{"other dark_threshold", base + "    dark_threshold: 0.5\n", false},
		{"other decode", base + "    decode: all\n", false},
		{"max_picture_pixels spelled out", base + "    max_picture_pixels: 12000000\n", true},
		{"other max_picture_pixels", base + "    max_picture_pixels: 50000\n", false},
		{"detect spelled out", base + "    detect:\n      enabled: true\n", true},
		{"detect disabled", base + "    detect:\n      enabled: false\n", false},
		{"detect classes", base + "    detect:\n      classes: [person]\n", false},
	}
	a := parseCamera(t, base)
	for _, test := range tests {
		b := parseCamera(t, test.other)
		if got := a.Equal(b); got != test.want {
			t.Errorf("%s: Equal() = %v, want %v", test.name, got, test.want)
		}
		if got := b.Equal(a); got != test.want {
			t.Errorf("%s: Equal() reversed = %v, want %v", test.name, got, test.want)
		}
	}

	// Two probes of one module, target and name under other camera labels
	// would share a session but not a reference file.
	probed := Camera{Name: "a", URL: "rtsp://h/s", referenceName: "yard.0123456789abcdef"}
	other := probed
	other.referenceName = "gate-2.0123456789abcdef"
	if probed.Equal(other) || !probed.Equal(probed) {
		t.Error("Equal() ignores the reference file's name")
	}

	// Cameras that did not come from Load do not crash it.
	unresolved := Camera{Name: "a", URL: "rtsp://h/s"}
	if unresolved.Equal(a) || !unresolved.Equal(unresolved) {
		t.Error("Equal() is wrong for a camera without options")
	}
}

func parseCamera(t *testing.T, entry string) Camera {
	t.Helper()
	cfg, err := Parse([]byte("cameras:\n" + entry))
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Cameras[0]
}

func options(transport string, timeout time.Duration, darkThreshold float64, decode string, detect DetectOptions) CameraOptions {
	return CameraOptions{
		Transport:     transport,
		Auth:          AuthAny,
		Timeout:       model.Duration(timeout),
		DarkThreshold: &darkThreshold,
		Decode:        decode,
		// The built-in default, which no case of options sets otherwise.
		MaxPicturePixels: 12_000_000,
		Detect:           detect,
		Reference:        ReferenceOptions{Window: model.Duration(time.Hour)},
	}
}

func withMaxPicturePixels(o CameraOptions, n int64) CameraOptions {
	o.MaxPicturePixels = n
	return o
}

func detect(enabled bool, classes ...string) DetectOptions {
	return DetectOptions{Enabled: &enabled, Classes: classes}
}

func equalOptions(a, b CameraOptions) bool {
	return Camera{CameraOptions: a}.Equal(Camera{CameraOptions: b})
}

func describe(o CameraOptions) string {
	threshold := "<nil>"
	if o.DarkThreshold != nil {
		threshold = fmt.Sprint(*o.DarkThreshold)
	}
	enabled := "<nil>"
	if o.Detect.Enabled != nil {
		enabled = fmt.Sprint(*o.Detect.Enabled)
	}
	return fmt.Sprintf("{%s %s %s %s %s %d detect:%s%q reference:%+v}", o.Transport, o.Auth, o.Timeout, threshold, o.Decode, o.MaxPicturePixels, enabled, o.Detect.Classes, o.Reference)
}
