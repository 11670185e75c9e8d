package deploy_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// exporterDir holds the exporter binary that the tests share.
var exporterDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "camera-exporter-deploy")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	exporterDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var buildExporter = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(exporterDir, "camera_exporter")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// exporterBinary builds the exporter from the repository, once for all the
// tests of the package, and returns the binary's path.
func exporterBinary(t *testing.T) string {
	t.Helper()
	bin, err := buildExporter()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}
