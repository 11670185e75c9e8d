package config

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// fileKind is a kind of file that the configuration names, and the most
// that one may hold: a path mistyped as /dev/zero, a FIFO or a log file
// must neither fill the memory nor block a reload.
type fileKind struct {
	what  string // in errors: "larger than the 1 MiB that <what> may hold"
	limit int64
}

var (
	configFile   = fileKind{"a configuration file", 16 << 20}
	labelsFile   = fileKind{"a labels file", 1 << 20}
	passwordFile = fileKind{"a password file", 4 << 10}
	// The largest detection models that OpenCV runs are a few hundred MB.
	modelWeights = fileKind{"model weights", 1 << 30}
	// Text descriptions of a network: Darknet .cfg, Caffe .prototxt.
	modelDescription = fileKind{"a network description", 16 << 20}
	// drift.MaxProfileSize, which drift.Load enforces as the camera reads
	// it; repeated as this package does not import drift.
	referenceFile = fileKind{"a reference profile", 4 << 20}
)

// statFile checks that path is a regular file of at most kind.limit bytes
// without reading it, and returns its information.
func statFile(path string, kind fileKind) (fs.FileInfo, error) {
	f, fi, err := openFile(path, kind)
	if err != nil {
		return nil, err
	}
	f.Close()
	return fi, nil
}

// readFile reads path, a regular file of at most kind.limit bytes.
func readFile(path string, kind fileKind) ([]byte, error) {
	f, _, err := openFile(path, kind)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Limited again: the file may grow after the check.
	b, err := io.ReadAll(io.LimitReader(f, kind.limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > kind.limit {
		return nil, kind.tooLarge(path)
	}
	return b, nil
}

// readFile is readFile recording the file in r's load progress.
func (r *reporter) readFile(path string, kind fileKind) ([]byte, error) {
	defer r.progress.reading(kind.what, path)()
	return readFile(path, kind)
}

// statFile is statFile recording the file in r's load progress.
func (r *reporter) statFile(path string, kind fileKind) (fs.FileInfo, error) {
	defer r.progress.reading(kind.what, path)()
	return statFile(path, kind)
}

// openFile opens path for reading if it is a regular file of at most
// kind.limit bytes. A stat first refuses devices without opening them, as
// opening some has effects; the open does not block, as a FIFO's would
// until a writer comes; and the opened file is checked again, in case the
// path was replaced in between.
func openFile(path string, kind fileKind) (*os.File, fs.FileInfo, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	if err := kind.check(path, fi); err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	if fi, err = f.Stat(); err == nil {
		err = kind.check(path, fi)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

func (kind fileKind) check(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file but %s", path, describeMode(fi.Mode()))
	}
	if fi.Size() > kind.limit {
		return kind.tooLarge(path)
	}
	return nil
}

func (kind fileKind) tooLarge(path string) error {
	return fmt.Errorf("%s: larger than the %s that %s may hold", path, formatBytes(kind.limit), kind.what)
}

// describeMode names the type of a file that is not a regular file.
func describeMode(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	}
	return fmt.Sprintf("of type %s", m.Type())
}

// formatBytes writes a limit, a power of two, as "4 KiB" or "1 GiB".
func formatBytes(n int64) string {
	for _, u := range []struct {
		size int64
		name string
	}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d %s", n/u.size, u.name)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}
