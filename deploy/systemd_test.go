package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// systemd is not PID 1 here, so the units are checked offline against a
// throwaway root that `make install DESTDIR=...` lays out, with the models
// from a local mirror of upstream built from ../../shared/models.

// systemdMaxExposure bounds the overall exposure systemd-analyze security
// gives camera_exporter.service, alone and with the CUDA drop-in: from 0,
// the safest, to 10; 1.0 to 4.9 reads "OK". What remains is what an exporter
// that reaches cameras over the network needs.
const systemdMaxExposure = 1.5

// systemdModels returns the model files deploy/models/SHA256SUMS lists: their
// paths under MODELS_DEST (and ../../shared/models) by their paths upstream.
func systemdModels(t *testing.T) map[string]string {
	t.Helper()
	sums, err := os.ReadFile("models/SHA256SUMS")
	if err != nil {
		t.Fatal(err)
	}
	models := map[string]string{}
	for _, line := range strings.Split(string(sums), "\n") {
		if fields := strings.Fields(line); len(fields) == 3 && !strings.HasPrefix(line, "#") {
			models[fields[1]] = fields[2]
		}
	}
	if len(models) == 0 {
		t.Fatal("models/SHA256SUMS lists no files")
	}
	return models
}

// systemdModelsMirror lays out the models as upstream serves them, from
// ../../shared/models, for MODELS_URL=file://...
func systemdModelsMirror(t *testing.T) string {
	t.Helper()
	shared, err := filepath.Abs("../../shared/models")
	if err != nil {
		t.Fatal(err)
	}
	mirror := t.TempDir()
	for path, upstream := range systemdModels(t) {
		upstream = filepath.Join(mirror, upstream)
		if err := os.MkdirAll(filepath.Dir(upstream), 0o755); err != nil {
			t.Fatal(err)
		}
		// Upstream has one LICENSE for both models.
		if err := os.Symlink(filepath.Join(shared, path), upstream); err != nil && !os.IsExist(err) {
			t.Fatal(err)
		}
	}
	return mirror
}

// systemdMake runs make in the repository root and returns its output.
func systemdMake(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("make", append([]string{"--no-print-directory"}, args...)...)
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// systemdInstall runs make install of bin into root, with the models from
// mirror and the given directory variables, and returns its output.
func systemdInstall(t *testing.T, bin, root, mirror string, vars ...string) string {
	t.Helper()
	return systemdMake(t, append([]string{"install", "DESTDIR=" + root, "BIN=" + bin, "MODELS_URL=file://" + mirror}, vars...)...)
}

// systemdWriteExecutable writes an executable shell script.
func systemdWriteExecutable(t *testing.T, path, script string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// systemdRoot installs a stub exporter into a new root, as the OS would
// hold it: with /bin/kill, which ExecReload= runs, and with the CUDA
// drop-in where the administrator puts it if cuda is set.
func systemdRoot(t *testing.T, mirror string, cuda bool, vars ...string) string {
	t.Helper()
	stub := filepath.Join(t.TempDir(), "camera_exporter")
	systemdWriteExecutable(t, stub, "exit 0\n")
	root := t.TempDir()
	systemdInstall(t, stub, root, mirror, vars...)
	systemdWriteExecutable(t, filepath.Join(root, "bin/kill"), "exit 0\n")
	if cuda {
		conf, err := os.ReadFile("systemd/cuda.conf")
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(root, "etc/systemd/system/camera_exporter.service.d")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "cuda.conf"), conf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// systemdVerify runs systemd-analyze verify on the installed units. Only
// they are checked: the root holds none of the units they depend on
// (sysinit.target, network-online.target).
func systemdVerify(root string) (string, error) {
	out, err := exec.Command("systemd-analyze", "verify", "--recursive-errors=no", "--root="+root,
		"camera_exporter.service", "camera_exporter.socket").CombinedOutput()
	return string(out), err
}

// systemdUnitValues returns the values of key in an installed unit file.
func systemdUnitValues(t *testing.T, path, key string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var values []string
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, key+"="); ok {
			values = append(values, v)
		}
	}
	return values
}

// TestSystemdVerify checks that systemd accepts the installed units without
// a single warning, with the default directories and with others, with and
// without the CUDA drop-in, and that it would see a missing binary.
func TestSystemdVerify(t *testing.T) {
	mirror := systemdModelsMirror(t)
	for _, tc := range []struct {
		name string
		cuda bool
		dirs map[string]string // make variables, over the defaults
		// Where the units must go for systemd to find them.
		unitDir string
	}{
		{name: "defaults", unitDir: "/usr/local/lib/systemd/system"},
		{name: "defaults with cuda.conf", cuda: true, unitDir: "/usr/local/lib/systemd/system"},
		{name: "packaged", dirs: map[string]string{"PREFIX": "/usr"}, unitDir: "/usr/lib/systemd/system"},
		{name: "other directories", dirs: map[string]string{
			"PREFIX": "/opt/camera", "SYSCONFDIR": "/etc/opt/camera", "STATEDIR": "/srv/camera_exporter",
		}, unitDir: "/etc/systemd/system"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dirs := map[string]string{"PREFIX": "/usr/local", "SYSCONFDIR": "/etc", "STATEDIR": "/var/lib/camera_exporter"}
			var vars []string
			for name, dir := range tc.dirs {
				dirs[name] = dir
				vars = append(vars, name+"="+dir)
			}
			root := systemdRoot(t, mirror, tc.cuda, vars...)
			if out, err := systemdVerify(root); err != nil || out != "" {
				t.Errorf("systemd-analyze verify: %v\n%s", err, out)
			}

			// The unit finds the binary and the configuration where they are.
			bin := dirs["PREFIX"] + "/bin/camera_exporter"
			configDir := dirs["SYSCONFDIR"] + "/camera_exporter"
			service := filepath.Join(root, tc.unitDir, "camera_exporter.service")
			wantExec := bin + " --config.file=" + configDir + "/exporter.yml $ARGS"
			if got := systemdUnitValues(t, service, "ExecStart"); len(got) != 1 || got[0] != wantExec {
				t.Errorf("ExecStart=%q, want %q", got, wantExec)
			}
			wantEnv := "-" + dirs["SYSCONFDIR"] + "/default/camera_exporter"
			if got := systemdUnitValues(t, service, "EnvironmentFile"); len(got) != 1 || got[0] != wantEnv {
				t.Errorf("EnvironmentFile=%q, want %q", got, wantEnv)
			}
			link := filepath.Join(root, configDir, "models")
			if target, err := os.Readlink(link); err != nil || filepath.IsAbs(target) {
				t.Errorf("%s -> %q, %v; want a relative link", link, target, err)
			}
			wantModels := filepath.Join(root, dirs["STATEDIR"], "models")
			if got, err := filepath.EvalSymlinks(link); err != nil || got != wantModels {
				t.Errorf("%s leads to %q, %v; want %s", link, got, err, wantModels)
			}

			// The check is not vacuous: verify looks for the binary in root.
			if err := os.Remove(filepath.Join(root, bin)); err != nil {
				t.Fatal(err)
			}
			if out, err := systemdVerify(root); err == nil || !strings.Contains(out, bin+" is not executable") {
				t.Errorf("systemd-analyze verify without the binary: %v, want it reported\n%s", err, out)
			}
		})
	}
}

// TestSystemdSecurity scores the service's sandbox, alone and with the CUDA
// drop-in, and lists what remains exposed.
func TestSystemdSecurity(t *testing.T) {
	overall := regexp.MustCompile(`Overall exposure level for camera_exporter\.service: (\d+\.\d+)`)
	mirror := systemdModelsMirror(t)
	for _, tc := range []struct {
		name string
		cuda bool
	}{{"service", false}, {"service with cuda.conf", true}} {
		t.Run(tc.name, func(t *testing.T) {
			root := systemdRoot(t, mirror, tc.cuda)
			out, err := exec.Command("systemd-analyze", "security", "--offline=true", "--root="+root,
				"--no-pager", "camera_exporter.service").CombinedOutput()
			if err != nil {
				t.Fatalf("systemd-analyze security: %v\n%s", err, out)
			}
			m := overall.FindSubmatch(out)
			if m == nil {
				t.Fatalf("no overall exposure in:\n%s", out)
			}
			exposure, err := strconv.ParseFloat(string(m[1]), 64)
			if err != nil {
				t.Fatal(err)
			}
			var exposed []string
			for _, line := range strings.Split(string(out), "\n") {
				if strings.HasPrefix(line, "✗") {
					exposed = append(exposed, strings.Join(strings.Fields(strings.TrimPrefix(line, "✗")), " "))
				}
			}
			t.Logf("overall exposure %.1f; exposed:\n  %s", exposure, strings.Join(exposed, "\n  "))
			if exposure > systemdMaxExposure {
				t.Errorf("overall exposure %.1f, want at most %.1f", exposure, systemdMaxExposure)
			}
		})
	}
}

// TestSystemdMakeInstall installs a real build into a DESTDIR and checks
// that every file is where the units look for it, that the installed
// configuration loads its detector through the models link, that a second
// install keeps what the administrator changed, and that make uninstall
// leaves the configuration and the models.
func TestSystemdMakeInstall(t *testing.T) {
	bin := exporterBinary(t)
	mirror := systemdModelsMirror(t)
	root := t.TempDir()
	out := systemdInstall(t, bin, root, mirror)
	for _, want := range []string{"systemctl daemon-reload", "systemctl enable --now camera_exporter.service", "systemd-sysusers"} {
		if !strings.Contains(out, want) {
			t.Errorf("make install does not say %q:\n%s", want, out)
		}
	}

	// Every installed file, its mode and what it must equal.
	type installed struct {
		path   string
		mode   os.FileMode
		source string
	}
	files := []installed{
		{"usr/local/bin/camera_exporter", 0o755, bin},
		{"usr/local/lib/systemd/system/camera_exporter.service", 0o644, "systemd/camera_exporter.service"},
		{"usr/local/lib/systemd/system/camera_exporter.socket", 0o644, "systemd/camera_exporter.socket"},
		{"usr/local/lib/sysusers.d/camera_exporter.conf", 0o644, "systemd/camera_exporter.sysusers"},
		{"etc/default/camera_exporter", 0o644, "systemd/camera_exporter.default"},
		// Camera passwords: not for every user to read.
		{"etc/camera_exporter/exporter.yml", 0o640, "../exporter.yml"},
	}
	for path := range systemdModels(t) {
		files = append(files, installed{"var/lib/camera_exporter/models/" + path, 0o644, "../../shared/models/" + path})
	}
	for _, f := range files {
		path := filepath.Join(root, f.path)
		info, err := os.Lstat(path)
		if err != nil {
			t.Error(err)
			continue
		}
		if info.Mode() != f.mode {
			t.Errorf("%s: mode %v, want %v", f.path, info.Mode(), f.mode)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(f.source)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s differs from %s", f.path, f.source)
		}
	}
	if target, err := os.Readlink(filepath.Join(root, "etc/camera_exporter/models")); err != nil || target != "../../var/lib/camera_exporter/models" {
		t.Errorf("etc/camera_exporter/models -> %q, %v; want ../../var/lib/camera_exporter/models", target, err)
	}

	// The shipped configuration, as installed, checked from elsewhere.
	config := filepath.Join(root, "etc/camera_exporter/exporter.yml")
	check := exec.Command(filepath.Join(root, "usr/local/bin/camera_exporter"), "--config.check", "--config.file="+config)
	check.Dir = t.TempDir()
	checkOut, err := check.CombinedOutput()
	wantModel := "detector " + filepath.Join(root, "etc/camera_exporter/models/yolo-fastest-1.1/yolo-fastest-1.1.weights") + " loads"
	if err != nil || !strings.Contains(string(checkOut), wantModel) {
		t.Errorf("camera_exporter --config.check: %v, want %q\n%s", err, wantModel, checkOut)
	}

	// A second install keeps what the administrator changed and replaces
	// the unit, which is not theirs to edit (drop-ins are).
	const unit = "usr/local/lib/systemd/system/camera_exporter.service"
	edited := map[string]string{
		"etc/camera_exporter/exporter.yml": "cameras: []\n",
		"etc/default/camera_exporter":      "ARGS=\"--log.level=debug\"\n",
		unit:                               "[Service]\n",
	}
	for path, content := range edited {
		if err := os.WriteFile(filepath.Join(root, path), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out = systemdInstall(t, bin, root, mirror)
	for _, path := range []string{"etc/camera_exporter/exporter.yml", "etc/default/camera_exporter", "etc/camera_exporter/models"} {
		if !strings.Contains(out, filepath.Join(root, path)+" exists, kept") {
			t.Errorf("second make install does not say it kept %s:\n%s", path, out)
		}
	}
	for path, content := range edited {
		got, err := os.ReadFile(filepath.Join(root, path))
		if err != nil {
			t.Fatal(err)
		}
		if path == unit && string(got) == content {
			t.Errorf("%s not replaced by a second make install", path)
		}
		if path != unit && string(got) != content {
			t.Errorf("%s overwritten by a second make install: %q", path, got)
		}
	}

	// make uninstall removes the program and its units, not the
	// configuration or the models.
	systemdMake(t, "uninstall", "DESTDIR="+root)
	for _, f := range files {
		_, err := os.Lstat(filepath.Join(root, f.path))
		if strings.HasPrefix(f.path, "usr/") && !os.IsNotExist(err) {
			t.Errorf("%s left by make uninstall: %v", f.path, err)
		}
		if !strings.HasPrefix(f.path, "usr/") && err != nil {
			t.Errorf("%s removed by make uninstall: %v", f.path, err)
		}
	}
}
