package reference

import (
	"os"
	"time"

	"github.com/camera-exporter/camera_exporter/drift"
)

// File is a camera's reference file as the running exporter follows it:
// read again when it appears or is replaced, as by `camera_exporter
// reference build`, and written when the exporter learned the reference.
// It is not safe for concurrent use.
type File struct {
	path  string
	stamp fileStamp // of the version loaded or saved last
}

// fileStamp tells when a file was replaced.
type fileStamp struct {
	size    int64
	modTime time.Time
}

// NewFile follows the reference at path.
func NewFile(path string) *File { return &File{path: path} }

// Path is the file's path.
func (f *File) Path() string { return f.path }

// Changed returns the profile when the file is new or was replaced since
// the version loaded or saved last, and nil when it is unchanged. A missing
// file is an error that errors.Is(err, fs.ErrNotExist) tells.
func (f *File) Changed() (*drift.Profile, error) {
	stamp, err := stampOf(f.path)
	if err != nil {
		return nil, err
	}
	if stamp == f.stamp {
		return nil, nil
	}
	// Stamped before loading: a file that does not load is not retried
	// until it changes again.
	f.stamp = stamp
	// drift.Load opens it once and checks what it opened: a FIFO or a
	// device swapped in after the stat blocks nothing.
	return drift.Load(f.path)
}

// Save writes p, which Changed then does not read back.
func (f *File) Save(p *drift.Profile) error {
	if err := p.Save(f.path); err != nil {
		return err
	}
	stamp, err := stampOf(f.path)
	if err != nil {
		return err
	}
	f.stamp = stamp
	return nil
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{size: fi.Size(), modTime: fi.ModTime()}, nil
}
