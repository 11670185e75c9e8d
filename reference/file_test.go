package reference

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/camera-exporter/camera_exporter/internal/testutil"
)

// TestFileChangedRefusesBadFiles replaces a camera's reference file, as the
// exporter follows it, with files that would block the camera's drift
// state or fill the memory: Changed refuses each at once, naming it.
func TestFileChangedRefusesBadFiles(t *testing.T) {
	for _, bad := range testutil.BadFiles(t, 64<<20, "larger than the 4 MiB that a reference profile may hold") {
		t.Run(bad.Name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "gate.json")
			if err := os.Symlink(bad.Path, path); err != nil {
				t.Fatal(err)
			}
			err := testutil.Unblocked(t, "Changed", func() error {
				_, err := NewFile(path).Changed()
				return err
			})
			if want := path + ": " + bad.Err; err == nil || err.Error() != want {
				t.Errorf("Changed: %v, want %s", err, want)
			}
		})
	}
}
