// Package boundedfile opens and reads the files that a configuration
// names: a path mistyped as /dev/zero, a FIFO or a log file must neither
// fill the memory nor block the reader.
package boundedfile

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// Kind is a kind of file and the most that one may hold.
type Kind struct {
	What  string // in errors: "larger than the 1 MiB that <What> may hold"
	Limit int64
}

// Open opens path for reading if it is a regular file of at most
// kind.Limit bytes. A stat first refuses devices without opening them, as
// opening some has effects; the open does not block, as a FIFO's would
// until a writer comes; and the opened file is checked again, in case the
// path was replaced in between.
func Open(path string, kind Kind) (*os.File, fs.FileInfo, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, nil, err // An *fs.PathError names the path.
	}
	if err := kind.Check(path, fi); err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	if fi, err = f.Stat(); err == nil {
		err = kind.Check(path, fi)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// Read reads path, a regular file of at most kind.Limit bytes.
func Read(path string, kind Kind) ([]byte, error) {
	f, _, err := Open(path, kind)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Limited again: the file may grow after the check.
	b, err := io.ReadAll(io.LimitReader(f, kind.Limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > kind.Limit {
		return nil, kind.tooLarge(path)
	}
	return b, nil
}

// Check refuses fi, path's information, unless it is a regular file of at
// most kind.Limit bytes.
func (kind Kind) Check(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file but %s", path, describeMode(fi.Mode()))
	}
	if fi.Size() > kind.Limit {
		return kind.tooLarge(path)
	}
	return nil
}

func (kind Kind) tooLarge(path string) error {
	return fmt.Errorf("%s: larger than the %s that %s may hold", path, formatBytes(kind.Limit), kind.What)
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
