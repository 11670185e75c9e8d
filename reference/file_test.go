package reference

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestFileChangedRefusesBadFiles replaces a camera's reference file, as the
// exporter follows it, with files that would block the camera's drift
// state or fill the memory: Changed refuses each at once, naming it.
func TestFileChangedRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	oversize := filepath.Join(dir, "oversize")
	if err := os.WriteFile(oversize, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(oversize, 64<<20); err != nil { // sparse
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, target, want string
	}{
		{"dev_zero", "/dev/zero", "not a regular file but a character device"},
		{"fifo", fifo, "not a regular file but a named pipe (FIFO)"},
		{"directory", t.TempDir(), "not a regular file but a directory"},
		{"oversize", oversize, "larger than the 4 MiB that a reference profile may hold"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "gate.json")
			if err := os.Symlink(tc.target, path); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				_, err := NewFile(path).Changed()
				done <- err
			}()
			select {
			case err := <-done:
				if want := path + ": " + tc.want; err == nil || err.Error() != want {
					t.Errorf("Changed: %v, want %s", err, want)
				}
			case <-time.After(10 * time.Second): // only ends a blocked read
				t.Fatal("Changed still blocked after 10s")
			}
		})
	}
}
