package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/camera-exporter/camera_exporter"

// cgoPackages are the only packages that may use cgo.
var cgoPackages = []string{"camera/decode", "detector/dnn"}

type goPackage struct {
	ImportPath string
	Imports    []string
	CgoFiles   []string
	Deps       []string
}

// goList runs go list -json with args and returns the packages.
func goList(t *testing.T, args ...string) []goPackage {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-json"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []goPackage
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p goPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			return pkgs
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
}

// relative returns a project package's path relative to the module, "" for
// other packages.
func relative(path string) string {
	if path == module {
		return "."
	}
	rel, ok := strings.CutPrefix(path, module+"/")
	if !ok {
		return ""
	}
	return rel
}

// documentedImports reads the README's Architecture table: the packages
// and the project packages each may import, nil for "every package".
func documentedImports(t *testing.T) map[string][]string {
	t.Helper()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Architecture\n")
	if !ok {
		t.Fatal("README.md has no Architecture section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	row := regexp.MustCompile("(?m)^\\| `([^`]+)`[^|]* \\| [^|]+ \\|(.*)\\|$")
	name := regexp.MustCompile("`([^`]+)`")
	allowed := map[string][]string{}
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		if strings.TrimSpace(m[2]) == "every package" {
			allowed[m[1]] = nil
			continue
		}
		imports := []string{}
		for _, n := range name.FindAllStringSubmatch(m[2], -1) {
			imports = append(imports, n[1])
		}
		allowed[m[1]] = imports
	}
	if len(allowed) == 0 {
		t.Fatal("README.md's Architecture section has no package table")
	}
	return allowed
}

// TestArchitecture holds the code to the README's Architecture section:
// every package is documented, imports only what its row allows, and only
// the documented packages use cgo.
func TestArchitecture(t *testing.T) {
	allowed := documentedImports(t)
	pkgs := goList(t, "./...")
	for _, p := range pkgs {
		pkg := relative(p.ImportPath)
		may, documented := allowed[pkg]
		if !documented {
			t.Errorf("package %s is missing from README.md's Architecture table", pkg)
			continue
		}
		delete(allowed, pkg)
		for _, imp := range p.Imports {
			if rel := relative(imp); rel != "" && may != nil && !slices.Contains(may, rel) {
				t.Errorf("%s imports %s, which README.md's Architecture table does not allow", pkg, rel)
			}
		}
		if uses := len(p.CgoFiles) > 0; uses != slices.Contains(cgoPackages, pkg) {
			t.Errorf("%s: uses cgo = %v, against the Architecture section", pkg, uses)
		}
	}
	for p := range allowed {
		t.Errorf("README.md's Architecture table lists %s, which does not exist", p)
	}
}

// TestCollectorTestsNeedNoCgoNorFFmpeg checks that the tests of the
// collectors and of the analyses they report run on fakes: neither they nor
// the packages depend on a cgo package or on rtsptest, which runs ffmpeg.
func TestCollectorTestsNeedNoCgoNorFFmpeg(t *testing.T) {
	for _, pkg := range []string{"./collector", "./analysis"} {
		pkgs := goList(t, "-deps", "-test", pkg)
		if len(pkgs) == 0 {
			t.Fatalf("go list found no dependencies of %s's tests", pkg)
		}
		for _, p := range pkgs {
			rel := relative(p.ImportPath)
			if rel == "camera/rtsptest" || slices.Contains(cgoPackages, rel) || strings.HasPrefix(p.ImportPath, "gocv.io/") {
				t.Errorf("%s's tests depend on %s", pkg, p.ImportPath)
			}
		}
	}
}
