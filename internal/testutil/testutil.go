// Package testutil holds the helpers that tests of several packages share.
// It imports nothing of the exporter, so any test may use it.
package testutil

import (
	"bytes"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// SyncBuffer collects output written from several goroutines, as a
// logger's from stream and analysis goroutines.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// WaitFor polls cond until it holds, failing tb with what it waited for
// once timeout has passed. The timeout bounds a test that would otherwise
// hang; it measures nothing.
func WaitFor(tb testing.TB, what string, timeout time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// FreeAddr returns a loopback address nothing listens on, for a server to
// listen on or for a camera that is not there.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// SilentAddr returns a loopback address that accepts connections and never
// answers, as a camera whose firmware hangs; it closes them when tb ends.
func SilentAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	tb.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	return l.Addr().String()
}

// Shared returns the path of a file of the data shared by every checkout,
// the real detectors and photographs in shared/ beside the repository root,
// wherever the test runs from.
func Shared(tb testing.TB, parts ...string) string {
	return filepath.Join(append([]string{here(tb), "..", "..", "..", "shared"}, parts...)...)
}

// DetectorBlock is the configuration's detector block of the real
// Yolo-Fastest COCO detector, followed by extra fields.
func DetectorBlock(tb testing.TB, extra string) string {
	return fmt.Sprintf(`detector:
  model: %[1]s/yolo-fastest-1.1.weights
  config: %[1]s/yolo-fastest-1.1.cfg
  labels: %[1]s/coco.names
  input_size: 320
  confidence: 0.4
%[2]s`, Shared(tb, "models", "yolo-fastest-1.1"), extra)
}
