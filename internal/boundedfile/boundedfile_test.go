package boundedfile

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestRead checks that Read returns a regular file within its limit whole,
// and refuses everything else at once, naming the path: a device that
// never ends, a FIFO without a writer, whose open and read would block, a
// directory, and a sparse file of one byte over the limit.
func TestRead(t *testing.T) {
	dir := t.TempDir()
	kind := Kind{What: "a test file", Limit: 4 << 10}
	write := func(name string, size int64) string {
		path := filepath.Join(dir, name)
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		return path
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		size       int // of a file read
		err        string
	}{
		{"within the limit", write("full", kind.Limit), int(kind.Limit), ""},
		{"empty", write("empty", 0), 0, ""},
		{"over the limit", write("over", kind.Limit+1), 0, filepath.Join(dir, "over") + ": larger than the 4 KiB that a test file may hold"},
		{"device", "/dev/zero", 0, "/dev/zero: not a regular file but a character device"},
		{"FIFO", fifo, 0, fifo + ": not a regular file but a named pipe (FIFO)"},
		{"directory", dir, 0, dir + ": not a regular file but a directory"},
		{"missing", filepath.Join(dir, "missing"), 0, "stat " + filepath.Join(dir, "missing") + ": no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan struct{})
			var (
				b   []byte
				err error
			)
			go func() {
				defer close(done)
				b, err = Read(tc.path, kind)
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second): // only ends a blocked Read
				t.Fatalf("Read(%s) still blocked after 10s", tc.path)
			}
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("Read: %v", err)
			case tc.err != "" && (err == nil || err.Error() != tc.err):
				t.Fatalf("Read error %v, want %q", err, tc.err)
			case len(b) != tc.size:
				t.Errorf("Read %d bytes, want %d", len(b), tc.size)
			}
		})
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{4 << 10: "4 KiB", 1 << 20: "1 MiB", 16 << 20: "16 MiB", 1 << 30: "1 GiB", 1000: "1000 bytes", 3<<20 + 1: "3145729 bytes"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
