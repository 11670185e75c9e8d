package deploy_test

import (
	"bytes"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Runtime packages that provide no library the binary links, and why the
// image has them.
var dockerNonLibraryPackages = map[string]string{
	"ca-certificates": "verifies rtsps:// cameras",
}

// dockerStage is a Dockerfile stage: the image it is built FROM and its
// instructions, continuation lines joined.
type dockerStage struct {
	from         string
	instructions []string
}

// dockerStages parses the Dockerfile at path.
func dockerStages(t *testing.T, path string) []dockerStage {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var stages []dockerStage
	var instr strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		// Docker drops comment lines, inside continuations too.
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if s, ok := strings.CutSuffix(strings.TrimRight(line, " \t"), `\`); ok {
			instr.WriteString(s + " ")
			continue
		}
		instr.WriteString(line)
		fields := strings.Fields(instr.String())
		instr.Reset()
		switch {
		case len(fields) == 0:
		case strings.EqualFold(fields[0], "FROM") && len(fields) > 1:
			stages = append(stages, dockerStage{from: fields[1]})
		case len(stages) > 0:
			stages[len(stages)-1].instructions = append(stages[len(stages)-1].instructions, strings.Join(fields, " "))
		}
	}
	if len(stages) == 0 {
		t.Fatalf("%s: no FROM", path)
	}
	return stages
}

// aptInstalls returns the packages the stage installs with apt-get install.
func (s dockerStage) aptInstalls() []string {
	var pkgs []string
	for _, instr := range s.instructions {
		_, after, ok := strings.Cut(instr, "apt-get install ")
		if !ok {
			continue
		}
		for _, f := range strings.Fields(after) {
			if f == "&&" || f == ";" {
				break
			}
			if !strings.HasPrefix(f, "-") {
				pkgs = append(pkgs, f)
			}
		}
	}
	return pkgs
}

// dockerLibraries returns the path of every shared library that bin loads,
// by name, as ldd finds them.
func dockerLibraries(t *testing.T, bin string) map[string]string {
	t.Helper()
	out, err := exec.Command("ldd", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("ldd: %v\n%s", err, out)
	}
	libs := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		fields := strings.Fields(line)
		switch {
		case len(fields) >= 3 && fields[1] == "=>" && fields[2] == "not":
			t.Errorf("ldd: %s", strings.TrimSpace(line))
		case len(fields) >= 3 && fields[1] == "=>":
			libs[fields[0]] = fields[2]
		case len(fields) == 2 && filepath.IsAbs(fields[0]): // the dynamic loader
			libs[filepath.Base(fields[0])] = fields[0]
		}
	}
	return libs
}

// dockerOwners returns the packages that installed each of paths.
func dockerOwners(t *testing.T, paths []string) map[string][]string {
	t.Helper()
	// dpkg knows a file by the path its package ships, /lib/... or
	// /usr/lib/..., which ldd may report either way on a merged /usr; and
	// a symlink's target may belong to another package than the link.
	candidates := map[string][]string{}
	var args []string
	for _, p := range paths {
		files := []string{p}
		if real, err := filepath.EvalSymlinks(p); err == nil && real != p {
			files = append(files, real)
		}
		var c []string
		for _, f := range files {
			if rest, ok := strings.CutPrefix(f, "/usr/"); ok {
				c = append(c, f, "/"+rest)
			} else {
				c = append(c, f, "/usr"+f)
			}
		}
		candidates[p] = c
		args = append(args, c...)
	}
	out, err := exec.Command("dpkg", append([]string{"-S"}, args...)...).Output()
	// dpkg fails when any path is unknown, as most of the variants are.
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("dpkg -S: %v", err)
	}
	byPath := map[string][]string{}
	for _, line := range strings.Split(string(out), "\n") {
		pkgs, path, ok := strings.Cut(line, ": ")
		if !ok || strings.HasPrefix(line, "diversion by ") {
			continue
		}
		for _, p := range strings.Split(pkgs, ", ") {
			name, _, _ := strings.Cut(p, ":") // without the architecture
			byPath[path] = append(byPath[path], name)
		}
	}
	owners := map[string][]string{}
	for p, c := range candidates {
		for _, q := range c {
			owners[p] = append(owners[p], byPath[q]...)
		}
		slices.Sort(owners[p])
		owners[p] = slices.Compact(owners[p])
	}
	return owners
}

// dockerDependencies returns pkgs and every package they depend on, as apt
// would install them.
func dockerDependencies(t *testing.T, pkgs []string) map[string]bool {
	t.Helper()
	args := append([]string{"depends", "--recurse", "--no-recommends", "--no-suggests",
		"--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances"}, pkgs...)
	out, err := exec.Command("apt-cache", args...).Output()
	if err != nil {
		t.Fatalf("apt-cache depends: %v", err)
	}
	deps := map[string]bool{}
	// Each package heads its own list of dependencies, unindented.
	for _, line := range strings.Split(string(out), "\n") {
		if line != "" && !strings.HasPrefix(line, " ") {
			name, _, _ := strings.Cut(strings.Trim(line, "<>"), ":")
			deps[name] = true
		}
	}
	return deps
}

// TestDockerfileRuntimePackages checks the runtime stage of deploy/Dockerfile
// against a binary built here: it installs, by their Debian 12 names, the
// packages of exactly the libraries the binary links, and with what they
// depend on, every library the binary loads.
func TestDockerfileRuntimePackages(t *testing.T) {
	stages := dockerStages(t, "Dockerfile")
	build, runtime := stages[0], stages[len(stages)-1]
	// The binary built here stands for the image's, and the package names
	// are this machine's: all must be Debian 12.
	osRelease, err := os.ReadFile("/etc/os-release")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^VERSION_CODENAME=bookworm$`).Match(osRelease) {
		t.Fatalf("this test compares with the Debian 12 packages of this machine, which runs\n%s", osRelease)
	}
	if runtime.from != "debian:12-slim" || !strings.HasSuffix(build.from, "-bookworm") {
		t.Errorf("stages from %s and %s, want Debian 12 (bookworm) for both", build.from, runtime.from)
	}

	packages := runtime.aptInstalls()
	if len(packages) == 0 {
		t.Fatal("the runtime stage installs no packages")
	}
	all := append(build.aptInstalls(), packages...)
	// apt-cache show skips the names it does not know, when there are
	// others.
	out, err := exec.Command("apt-cache", append([]string{"show", "--no-all-versions"}, all...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("apt-cache show: %v\n%s", err, out)
	}
	for _, p := range all {
		if !bytes.Contains(out, []byte("\nPackage: "+p+"\n")) && !bytes.HasPrefix(out, []byte("Package: "+p+"\n")) {
			t.Errorf("%s is not a Debian 12 package", p)
		}
	}

	bin := exporterBinary(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	needed, err := f.ImportedLibraries()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	libs := dockerLibraries(t, bin)
	var paths []string
	for _, p := range libs {
		paths = append(paths, p)
	}
	owners := dockerOwners(t, paths)

	installed := map[string]bool{}
	for _, name := range needed {
		path, ok := libs[name]
		if !ok {
			t.Errorf("ldd does not list %s, which the binary needs", name)
			continue
		}
		i := slices.IndexFunc(owners[path], func(p string) bool { return slices.Contains(packages, p) })
		if i < 0 {
			t.Errorf("the binary needs %s, from %v, which the runtime stage does not install", name, owners[path])
			continue
		}
		installed[owners[path][i]] = true
	}
	for _, p := range packages {
		if !installed[p] && dockerNonLibraryPackages[p] == "" {
			t.Errorf("the runtime stage installs %s, which has none of the libraries the binary needs", p)
		}
	}

	deps := dockerDependencies(t, packages)
	for name, path := range libs {
		if !slices.ContainsFunc(owners[path], func(p string) bool { return deps[p] }) {
			t.Errorf("%s (%s, from %v) comes with none of the runtime packages", name, path, owners[path])
		}
	}
}
