package rtsptest_test

import (
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/pion/rtp"

	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
)

// TestTeardowns checks that a client closing its session is counted on its
// clip's path only.
func TestTeardowns(t *testing.T) {
	clip := rtsptest.Clip(t, rtsptest.MJPEG, "color=c=gray:s=64x48:r=25", 2)
	srv, err := rtsptest.Start(rtsptest.Options{}, map[string]*rtsptest.Media{"a": clip, "b": clip})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	play := func(name string) *gortsplib.Client {
		t.Helper()
		u, err := base.ParseURL(srv.URL(name))
		if err != nil {
			t.Fatal(err)
		}
		c := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host}
		if err := c.Start2(); err != nil {
			t.Fatal(err)
		}
		desc, _, err := c.Describe(u)
		if err == nil {
			err = c.SetupAll(desc.BaseURL, desc.Medias)
		}
		if err == nil {
			_, err = c.Play(nil)
		}
		if err != nil {
			c.Close()
			t.Fatal(err)
		}
		return c
	}

	b := play("b")
	defer b.Close()
	play("a").Close() // TEARDOWN, then the connection closes
	testutil.WaitFor(t, "the TEARDOWN of a", 5*time.Second, func() bool { return srv.Teardowns("a") == 1 })
	if n := srv.Teardowns("b"); n != 0 {
		t.Errorf("Teardowns(b) = %d while its session is open, want 0", n)
	}
}

// TestReplayNumbering checks that the packets packetized once and sent in a
// loop are numbered on, each loop after the last, and stamped a frame
// later each access unit.
func TestReplayNumbering(t *testing.T) {
	clip := rtsptest.Clip(t, rtsptest.MJPEG, "color=c=gray:s=64x48:r=25", 2)
	srv, err := rtsptest.Start(rtsptest.Options{}, map[string]*rtsptest.Media{"cam": clip})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var mu sync.Mutex
	var got []rtp.Header
	playClip(t, srv, "cam", &gortsplib.Client{}, func(pkt *rtp.Packet) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, pkt.Header)
	})
	testutil.WaitFor(t, "three loops of the clip", 5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= 6
	})
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(got); i++ {
		if got[i].SequenceNumber != got[i-1].SequenceNumber+1 {
			t.Errorf("packet %d: sequence number %d after %d", i, got[i].SequenceNumber, got[i-1].SequenceNumber)
		}
		// One packet per 64x48 JPEG: each is a frame later, 90 kHz / 25.
		if d := got[i].Timestamp - got[i-1].Timestamp; d != 90000/25 {
			t.Errorf("packet %d: timestamp %d after %d", i, got[i].Timestamp, got[i-1].Timestamp)
		}
	}
}
