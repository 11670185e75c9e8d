package rtsptest_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"

	"github.com/camera-exporter/camera_exporter/camera/rtsptest"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
)

// received is what a plain gortsplib reader of a clip saw.
type received struct {
	mu     sync.Mutex
	seqs   []uint16
	errors []string
}

// playClip plays the named clip of srv over TCP with c, given the
// server's address, and hands each RTP packet to onPacket until the test
// ends.
func playClip(t *testing.T, srv *rtsptest.Server, name string, c *gortsplib.Client, onPacket func(*rtp.Packet)) {
	t.Helper()
	u, err := base.ParseURL(srv.URL(name))
	if err != nil {
		t.Fatal(err)
	}
	tcp := gortsplib.TransportTCP
	c.Scheme, c.Host, c.Transport = u.Scheme, u.Host, &tcp
	if err := c.Start2(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	desc, _, err := c.Describe(u)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		t.Fatal(err)
	}
	c.OnPacketRTPAny(func(_ *description.Media, _ format.Format, pkt *rtp.Packet) { onPacket(pkt) })
	if _, err := c.Play(nil); err != nil {
		t.Fatal(err)
	}
}

func (r *received) holds(cond func(seqs []uint16, errors []string) bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return cond(r.seqs, r.errors)
}

// TestFaults checks that each fault shows in the packets a reader gets.
func TestFaults(t *testing.T) {
	clip := rtsptest.Clip(t, rtsptest.MJPEG, "color=c=gray:s=64x48:r=25", 2)
	for _, tc := range []struct {
		name  string
		fault func(srv *rtsptest.Server)
		shows func(seqs []uint16, errors []string) bool
	}{
		{"duplicate", func(srv *rtsptest.Server) { srv.Duplicate("cam") }, func(seqs []uint16, _ []string) bool {
			return len(seqs) > 1 && seqs[len(seqs)-1] == seqs[len(seqs)-2]
		}},
		{"drop", func(srv *rtsptest.Server) { srv.Drop("cam", 3) }, func(seqs []uint16, _ []string) bool {
			for i := 1; i < len(seqs); i++ {
				if seqs[i]-seqs[i-1] == 4 {
					return true
				}
			}
			return false
		}},
		// gortsplib rejects the packets of another SSRC.
		{"restart encoder", func(srv *rtsptest.Server) { srv.RestartEncoder("cam") }, func(_ []uint16, errors []string) bool {
			return len(errors) > 0 && strings.Contains(errors[len(errors)-1], "wrong SSRC")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := rtsptest.Start(rtsptest.Options{}, map[string]*rtsptest.Media{"cam": clip})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			var got received
			playClip(t, srv, "cam", &gortsplib.Client{
				OnPacketsLost: func(uint64) {}, // seqs shows them
				OnDecodeError: func(err error) {
					got.mu.Lock()
					defer got.mu.Unlock()
					got.errors = append(got.errors, err.Error())
				},
			}, func(pkt *rtp.Packet) {
				got.mu.Lock()
				defer got.mu.Unlock()
				got.seqs = append(got.seqs, pkt.SequenceNumber)
			})
			testutil.WaitFor(t, "packets", 5*time.Second, func() bool {
				return got.holds(func(seqs []uint16, _ []string) bool { return len(seqs) > 0 })
			})
			tc.fault(srv)
			testutil.WaitFor(t, "the fault", 5*time.Second, func() bool { return got.holds(tc.shows) })
		})
	}
}
