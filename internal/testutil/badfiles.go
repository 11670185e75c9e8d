package testutil

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// BadFile is a file that a reader of configured files must refuse at once,
// and the error that follows its path ("path: err").
type BadFile struct {
	Name, Path, Err string
}

// BadFiles returns a device that never ends, a FIFO without a writer, whose
// open and read would block, a directory, and a sparse regular file of one
// byte over limit, whose refusal reads tooLarge.
func BadFiles(tb testing.TB, limit int64, tooLarge string) []BadFile {
	tb.Helper()
	dir := tb.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		tb.Fatal(err)
	}
	oversize := filepath.Join(dir, "oversize")
	if err := os.WriteFile(oversize, nil, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.Truncate(oversize, limit+1); err != nil {
		tb.Fatal(err)
	}
	return []BadFile{
		{"dev_zero", "/dev/zero", "not a regular file but a character device"},
		{"fifo", fifo, "not a regular file but a named pipe (FIFO)"},
		{"directory", tb.TempDir(), "not a regular file but a directory"},
		{"oversize", oversize, tooLarge},
	}
}

// Unblocked runs f and returns its error, failing the test if f is still
// running after 10 s, as a read of a FIFO or a device would be.
func Unblocked(tb testing.TB, what string, f func() error) error {
	tb.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second): // only ends a blocked f
		tb.Fatalf("%s still blocked after 10s", what)
		return nil
	}
}
