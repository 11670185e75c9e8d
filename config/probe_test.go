package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

const probeConfig = `defaults:
  timeout: 4s
auths:
  viewer:
    modules: [site, learning]
    username: viewer
    password: s3cret
  from-file:
    modules: [site]
    username: ops
    password_file: ops.pass
modules:
  site:
    allowed_targets: [10.20.0.0/16, 192.0.2.7, "*.cam.example", "gate-?.lan", "2001:db8::/32"]
    transport: udp
    dark_threshold: 0.3
  learning:
    allowed_targets: [10.20.0.0/16]
    reference:
      dir: refs
cameras:
  - name: gate
    url: rtsp://10.20.1.1/main
`

func loadProbeConfig(t *testing.T) *Config {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ops.pass"), []byte("from-the-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "exporter.yml")
	if err := os.WriteFile(path, []byte(probeConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestModuleAllows(t *testing.T) {
	m := loadProbeConfig(t).Modules["site"]
	for host, want := range map[string]bool{
		"10.20.3.4":          true,
		"10.21.0.1":          false,
		"192.0.2.7":          true,
		"192.0.2.8":          false,
		"::ffff:10.20.0.1":   true, // an IPv4-mapped address is the IPv4 one
		"[2001:db8::1]":      true,
		"2001:db9::1":        false,
		"a.cam.example":      true,
		"A.B.CAM.EXAMPLE.":   true,
		"cam.example":        false,
		"cam.example.evil":   false,
		"evil-cam.example":   false,
		"gate-1.lan":         true,
		"gate-10.lan":        false,
		"localhost":          false,
		"127.0.0.1":          false,
		"10.20.0.1.nip.io":   false, // a name, which no CIDR matches
		"":                   false,
		"x.cam.example/evil": false,
	} {
		if got := m.Allows(host); got != want {
			t.Errorf("Allows(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestProbeCamera(t *testing.T) {
	cfg := loadProbeConfig(t)
	for _, test := range []struct {
		name                        string
		target, module, auth, label string
		wantName, wantURL           string
		wantUser, wantPass          string
		wantConfigured              bool
		wantErr                     string
	}{
		{name: "URL without scheme", target: "10.20.0.5:554/stream1", module: "site",
			wantName: "10.20.0.5:554/stream1", wantURL: "rtsp://10.20.0.5:554/stream1"},
		{name: "rtsps URL with query", target: "rtsps://a.cam.example/live?channel=2", module: "site", label: "yard",
			wantName: "yard", wantURL: "rtsps://a.cam.example/live?channel=2"},
		{name: "auth block", target: "10.20.0.5/s", module: "site", auth: "viewer",
			wantName: "10.20.0.5/s", wantURL: "rtsp://10.20.0.5/s", wantUser: "viewer", wantPass: "s3cret"},
		{name: "auth from a password file", target: "10.20.0.5/s", module: "site", auth: "from-file",
			wantName: "10.20.0.5/s", wantURL: "rtsp://10.20.0.5/s", wantUser: "ops", wantPass: "from-the-file"},
		{name: "configured camera", target: "gate", wantConfigured: true,
			wantName: "gate", wantURL: "rtsp://10.20.1.1/main"},
		{name: "reference with a name", target: "10.20.0.5/s", module: "learning", label: "yard",
			wantName: "yard", wantURL: "rtsp://10.20.0.5/s"},
		{name: "missing target", module: "site", wantErr: "target parameter is missing"},
		{name: "unknown module", target: "10.20.0.5", module: "nope", wantErr: `unknown module "nope"`},
		{name: "not allowed", target: "10.30.0.5", module: "site", wantErr: "not in the module's allowed_targets"},
		{name: "credentials", target: "rtsp://u:p@10.20.0.5/", module: "site", wantErr: "must not hold credentials"},
		{name: "other scheme", target: "http://10.20.0.5/", module: "site", wantErr: "scheme must be rtsp or rtsps"},
		{name: "no host", target: "rtsp:///path", module: "site", wantErr: "missing host"},
		{name: "fragment", target: "10.20.0.5/#x", module: "site", wantErr: "fragment"},
		{name: "control character", target: "10.20.0.5/a\nb", module: "site", wantErr: "control characters"},
		{name: "unknown auth", target: "10.20.0.5", module: "site", auth: "root", wantErr: `unknown auth "root"`},
		{name: "bad camera name", target: "10.20.0.5", module: "site", label: "a/b", wantErr: "must match"},
		{name: "reference without a name", target: "10.20.0.5", module: "learning", wantErr: "name the camera"},
		{name: "configured camera with auth", target: "gate", auth: "viewer", wantErr: "do not apply"},
		{name: "auth not for the module", target: "10.20.0.5", module: "learning", auth: "from-file", label: "yard",
			wantErr: `auth "from-file" is not for module "learning"`},
		{name: "configured camera's name", target: "10.20.0.5", module: "site", label: "gate",
			wantErr: `camera "gate" is a configured camera`},
		{name: "configured camera's name, module with references", target: "10.20.0.5", module: "learning", label: "gate",
			wantErr: `camera "gate" is a configured camera`},
		{name: "camera name too long", target: "10.20.0.5", module: "site", label: strings.Repeat("a", 129),
			wantErr: "camera: at most 128 characters"},
		{name: "longest camera name", target: "10.20.0.5", module: "site", label: strings.Repeat("a", 128),
			wantName: strings.Repeat("a", 128), wantURL: "rtsp://10.20.0.5"},
	} {
		t.Run(test.name, func(t *testing.T) {
			cam, configured, err := cfg.ProbeCamera(test.target, test.module, test.auth, test.label)
			if test.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), test.wantErr) {
					t.Fatalf("error = %v, want one with %q", err, test.wantErr)
				}
				if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "u:p") {
					t.Errorf("error discloses a credential: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			user, pass := cam.Credentials()
			if cam.Name != test.wantName || cam.StreamURL() != test.wantURL || user != test.wantUser || pass != test.wantPass || configured != test.wantConfigured {
				t.Errorf("got %q %q %q %q configured %v, want %q %q %q %q configured %v", cam.Name, cam.StreamURL(), user, pass, configured,
					test.wantName, test.wantURL, test.wantUser, test.wantPass, test.wantConfigured)
			}
		})
	}
}

// TestModuleDefaults checks that a module's settings fall back to the
// defaults block, then to the built-in defaults, as a camera's do.
func TestModuleDefaults(t *testing.T) {
	cfg := loadProbeConfig(t)
	cam, _, err := cfg.ProbeCamera("10.20.0.5/s", "site", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if cam.Transport != TransportUDP || *cam.DarkThreshold != 0.3 || cam.Timeout != model.Duration(4*time.Second) ||
		cam.Decode != DecodeKeyframe || cam.MaxPicturePixels != 12_000_000 || !*cam.Detect.Enabled {
		t.Errorf("module camera options = %s", describe(cam.CameraOptions))
	}
	learning, _, err := cfg.ProbeCamera("10.20.0.5/s", "learning", "", "yard")
	if err != nil {
		t.Fatal(err)
	}
	// The hash of the module and target is pinned: changing it would lose
	// every probed camera's saved reference.
	if want := filepath.Join(filepath.Dir(learning.Reference.Dir), "refs", "yard.6048608afd01aac4.json"); learning.ReferenceFile() != want {
		t.Errorf("reference file = %q, want %q", learning.ReferenceFile(), want)
	}
	if !filepath.IsAbs(learning.Reference.Dir) {
		t.Errorf("reference.dir %q is not made relative to the configuration file", learning.Reference.Dir)
	}
}

func TestProbeConfigErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "exporter.yml")
	in := `auths:
  nouser:
    modules: [open]
    password: x
  both:
    modules: [open]
    username: u
    password: x
    password_file: /etc/passwd
modules:
  open:
    transport: tcp
  bad:
    allowed_targets: [10.0.0.0/33, "cam_1.lan", "*.ok.lan"]
    timeout: 5
    transportt: udp
  "bad name":
    allowed_targets: [10.0.0.1]
    reference:
      calibration: 1m
`
	if err := os.WriteFile(path, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	want := path + `:15: timeout: not a valid duration string: "5"`
	if err == nil || err.Error() != want {
		t.Fatalf("got error\n%v\nwant\n%s", err, want)
	}
	in = strings.Replace(strings.Replace(in, "    timeout: 5\n", "", 1), "    transportt: udp\n", "", 1)
	if err := os.WriteFile(path, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(path)
	wantAll := strings.Join([]string{
		path + `:14: module "bad": allowed_targets "10.0.0.0/33": not a CIDR, an address or a host name pattern (letters, digits, '.', '-', '*' and '?')`,
		path + `:14: module "bad": allowed_targets "cam_1.lan": not a CIDR, an address or a host name pattern (letters, digits, '.', '-', '*' and '?')`,
		path + `:15: module "bad name": name "bad name": must match ^[a-zA-Z0-9_-]+$`,
		path + `:17: module "bad name": reference.calibration needs reference.dir, where the learned reference is saved`,
		path + `:11: module "open": missing allowed_targets: the hosts the module may probe, as CIDRs or host name patterns`,
		path + `:9: auth "both": password and password_file are mutually exclusive`,
		path + `:2: auth "nouser": missing username`,
	}, "\n")
	if err == nil || err.Error() != wantAll {
		t.Errorf("got error\n%v\nwant\n%s", err, wantAll)
	}

	if err := os.WriteFile(path, []byte("modules:\n  m:\n    allowed_target: [10.0.0.1]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(path)
	if want := path + `:3: field "allowed_target" not found in module`; err == nil || err.Error() != want {
		t.Errorf("got error\n%v\nwant\n%s", err, want)
	}
}

// TestRedactedAuths checks that /config shows no auth block's password.
func TestRedactedAuths(t *testing.T) {
	out, err := loadProbeConfig(t).Redacted()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "s3cret") || strings.Contains(string(out), "from-the-file") {
		t.Errorf("Redacted() discloses a password:\n%s", out)
	}
	if !strings.Contains(string(out), "password: <secret>") || !strings.Contains(string(out), "allowed_targets:") {
		t.Errorf("Redacted() lacks the auths or modules:\n%s", out)
	}
}

// TestProbeReferenceFiles checks that a probe's reference file is its
// module's and target's: never a configured camera's, whatever camera=
// says, nor another target's under the same name.
func TestProbeReferenceFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "exporter.yml")
	in := `defaults:
  reference:
    dir: refs
    calibration: 1m
modules:
  inherits:
    allowed_targets: [10.20.0.0/16]
  learning:
    allowed_targets: [10.20.0.0/16]
    reference:
      dir: probe-refs
      calibration: 2m
  other:
    allowed_targets: [10.20.0.0/16]
    reference:
      dir: probe-refs
cameras:
  - name: gate
    url: rtsp://10.20.1.1/main
`
	if err := os.WriteFile(path, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Cameras[0].ReferenceFile(), filepath.Join(dir, "refs", "gate.json"); got != want {
		t.Fatalf("the configured camera's reference file = %q, want %q", got, want)
	}
	// The defaults' directory and calibration are the configured cameras'.
	inherits, _, err := cfg.ProbeCamera("10.20.1.1/main", "inherits", "", "yard")
	if err != nil {
		t.Fatal(err)
	}
	if inherits.ReferenceFile() != "" || inherits.Reference.Calibration != 0 || inherits.Reference.Window != model.Duration(time.Hour) {
		t.Errorf("a module without reference.dir: file %q, calibration %s, window %s; want none, 0s, 1h",
			inherits.ReferenceFile(), inherits.Reference.Calibration, inherits.Reference.Window)
	}
	files := map[string]string{}
	for _, p := range []struct{ module, target, name string }{
		{"learning", "10.20.1.1/main", "yard"},
		{"learning", "10.20.1.2/main", "yard"}, // another stream, the same name
		{"learning", "10.20.1.1/main", "gate-2"},
		{"other", "10.20.1.1/main", "yard"}, // another module's settings
	} {
		cam, _, err := cfg.ProbeCamera(p.target, p.module, "", p.name)
		if err != nil {
			t.Fatal(err)
		}
		file := cam.ReferenceFile()
		if filepath.Dir(file) != filepath.Join(dir, "probe-refs") || !IsProbeReference(filepath.Base(file)) ||
			!strings.HasPrefix(filepath.Base(file), p.name+".") {
			t.Errorf("%v: reference file %q, want probe-refs/%s.<hash>.json", p, file, p.name)
		}
		if other, ok := files[file]; ok {
			t.Errorf("%v and %s share the reference file %s", p, other, file)
		}
		files[file] = fmt.Sprint(p)
		if p.module == "learning" && cam.Reference.Calibration != model.Duration(2*time.Minute) {
			t.Errorf("%v: calibration %s, want the module's 2m", p, cam.Reference.Calibration)
		}
	}
	if IsProbeReference("gate.json") {
		t.Error("a configured camera's file reads as a probe's")
	}
}

// TestProbeConfigBindings checks the load errors of auth blocks' modules
// and of modules' reference directories, each at its file and line.
func TestProbeConfigBindings(t *testing.T) {
	for _, test := range []struct {
		name string
		in   string
		want []string // the lines of the error, after the file name
	}{
		{
			name: "auth without modules",
			in:   "auths:\n  prod:\n    username: admin\n    password: Pr0d-S3cret\nmodules:\n  lab:\n    allowed_targets: [10.9.0.0/16]\n",
			want: []string{`:2: auth "prod": missing modules: the modules whose probes may send these credentials`},
		},
		{
			name: "auth with empty modules",
			in:   "auths:\n  prod:\n    modules: []\n    username: admin\nmodules:\n  lab:\n    allowed_targets: [10.9.0.0/16]\n",
			want: []string{`:3: auth "prod": missing modules: the modules whose probes may send these credentials`},
		},
		{
			name: "auth naming an unknown module",
			in:   "auths:\n  prod:\n    username: admin\n    modules: [lab, prod-site]\nmodules:\n  lab:\n    allowed_targets: [10.9.0.0/16]\n",
			want: []string{`:4: auth "prod": modules: unknown module "prod-site"`},
		},
		{
			name: "module sharing the defaults' reference directory",
			in:   "defaults:\n  reference:\n    dir: refs\nmodules:\n  m:\n    allowed_targets: [10.9.0.0/16]\n    reference:\n      dir: ./refs/\n",
			want: []string{`:7: module "m": reference.dir {{dir}}/refs is also the reference directory of the defaults: probes and configured cameras must not share reference files`},
		},
		{
			name: "module sharing a camera's reference directory",
			in:   "cameras:\n  - name: gate\n    url: rtsp://10.9.0.1/\n    reference:\n      dir: gate-refs\nmodules:\n  m:\n    allowed_targets: [10.9.0.0/16]\n    reference:\n      dir: gate-refs\n",
			want: []string{`:9: module "m": reference.dir {{dir}}/gate-refs is also the reference directory of camera "gate": probes and configured cameras must not share reference files`},
		},
		{
			name: "reference_file_limit without a directory",
			in:   "modules:\n  m:\n    allowed_targets: [10.9.0.0/16]\n    reference_file_limit: 10\n",
			want: []string{`:4: module "m": reference_file_limit needs reference.dir, where the probes' references are saved`},
		},
		{
			name: "negative reference_file_limit",
			in:   "modules:\n  m:\n    allowed_targets: [10.9.0.0/16]\n    reference_file_limit: -1\n    reference:\n      dir: refs\n",
			want: []string{`:4: module "m": reference_file_limit -1: must be positive (0 or unset: 1000)`},
		},
	} {
		t.Run(test.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "exporter.yml")
			if err := os.WriteFile(path, []byte(test.in), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path)
			lines := make([]string, len(test.want))
			for i, w := range test.want {
				lines[i] = path + strings.ReplaceAll(w, "{{dir}}", dir)
			}
			if want := strings.Join(lines, "\n"); err == nil || err.Error() != want {
				t.Errorf("got error\n%v\nwant\n%s", err, want)
			}
			if err != nil && strings.Contains(err.Error(), "Pr0d-S3cret") {
				t.Errorf("the error discloses the password: %v", err)
			}
		})
	}
}

// TestModuleReferenceDirSameDirectory gives a module the defaults' or a
// camera's reference directory by another path, a symbolic link: the load
// fails, naming both; a directory that does not exist yet is told apart
// by its path.
func TestModuleReferenceDirSameDirectory(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"refs", "gate-refs", "probe-refs"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{"refs-link": "refs", "gate-link": "gate-refs"} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "exporter.yml")
	in := "defaults:\n  reference:\n    dir: refs\ncameras:\n  - name: gate\n    url: rtsp://10.9.0.1/\n    reference:\n      dir: gate-refs\n" +
		"modules:\n  a:\n    allowed_targets: [10.9.0.0/16]\n    reference:\n      dir: refs-link\n" +
		"  b:\n    allowed_targets: [10.9.0.0/16]\n    reference:\n      dir: gate-link/\n" +
		"  c:\n    allowed_targets: [10.9.0.0/16]\n    reference:\n      dir: probe-refs\n" +
		"  d:\n    allowed_targets: [10.9.0.0/16]\n    reference:\n      dir: not-yet\n"
	if err := os.WriteFile(path, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	want := strings.Join([]string{
		path + `:12: module "a": reference.dir ` + dir + `/refs-link is the directory ` + dir + `/refs, the reference directory of the defaults: probes and configured cameras must not share reference files`,
		path + `:16: module "b": reference.dir ` + dir + `/gate-link is the directory ` + dir + `/gate-refs, the reference directory of camera "gate": probes and configured cameras must not share reference files`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Errorf("got error\n%v\nwant\n%s", err, want)
	}
}

// TestModuleReferenceFileLimit checks the limit's built-in value.
func TestModuleReferenceFileLimit(t *testing.T) {
	cfg, err := Parse([]byte("modules:\n  plain:\n    allowed_targets: [10.9.0.0/16]\n  learning:\n    allowed_targets: [10.9.0.0/16]\n    reference:\n      dir: /refs\n  small:\n    allowed_targets: [10.9.0.0/16]\n    reference_file_limit: 5\n    reference:\n      dir: /refs\n"))
	if err != nil {
		t.Fatal(err)
	}
	for module, want := range map[string]int{"plain": 0, "learning": 1000, "small": 5} {
		if got := cfg.Modules[module].ReferenceFileLimit; got != want {
			t.Errorf("module %s: reference_file_limit %d, want %d", module, got, want)
		}
	}
}
