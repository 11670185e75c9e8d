package camera

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/pion/rtp"
)

// packetsIn is what one session knows of the RTP packets it receives
// before they are depacketized.
type packetsIn struct {
	seq seqTracker // on gortsplib's reader goroutine only
	// arrived counts packets, those gortsplib rejected included: packets
	// that keep arriving without giving a picture mean a broken session.
	arrived atomic.Uint64
	// end takes the error that onPacket ends the session with: on the
	// reader goroutine closing the client would wait for itself.
	end   chan error
	ended bool // on gortsplib's reader goroutine only
	// keepAll is decodeAll as of the previous packet, on gortsplib's
	// reader goroutine only: whether the depacketizer keeps the slices of
	// frames that are no key frame whole. The access unit where decoding
	// every frame begins may have lost some, and decodes as a frame
	// without its references would, which intra refresh does before its
	// first refresh and which does not count as a decode error.
	keepAll bool
	// The SSRC of the first packet the bypass handed on, on gortsplib's
	// reader goroutine only: gortsplib refuses packets of another.
	ssrc    uint32
	ssrcSet bool
}

// fromSource reports whether a packet that the bypass hands on is of the
// session's source, the first packet's, whose packets gortsplib delivers.
func (in *packetsIn) fromSource(ssrc uint32) bool {
	if !in.ssrcSet {
		in.ssrc, in.ssrcSet = ssrc, true
	}
	return ssrc == in.ssrc
}

// endSession has waitPicture end the session with err; the packets that
// arrive meanwhile are ignored.
func (in *packetsIn) endSession(err error) {
	in.ended = true
	in.end <- err // buffered, and sent once
}

// countPacket counts a packet's losses and reports whether it is to be
// depacketized: a duplicate is not.
func (s *session) countPacket(in *packetsIn, pkt *rtp.Packet) bool {
	in.arrived.Add(1)
	lost, duplicate := in.seq.push(pkt.SequenceNumber)
	s.packetsLost.Add(lost)
	return !duplicate
}

// waitPicture waits for the session to end, and ends it when onPacket asks
// or when packets keep arriving but no frame came of them for the camera's
// timeout. gortsplib's read timeout only ends a session that receives
// nothing; one whose packets are all rejected, as after an encoder restart
// with another SSRC, would stay up without video forever. A new session
// resynchronizes.
func (s *session) waitPicture(c *gortsplib.Client, in *packetsIn, start time.Time) error {
	timeout := time.Duration(s.cfg.Timeout)
	done, stopped := make(chan struct{}), make(chan struct{})
	var ended error // set before stopped is closed
	go func() {
		defer close(stopped)
		ticker := time.NewTicker(min(timeout/2, time.Second))
		defer ticker.Stop()
		arrived := in.arrived.Load()
		for {
			select {
			case <-done:
				return
			case ended = <-in.end:
				c.Close()
				return
			case now := <-ticker.C:
				// Packets since the last tick: data is arriving now.
				last := arrived
				arrived = in.arrived.Load()
				since := start
				if frame := time.Unix(0, s.lastFrame.Load()); frame.After(since) {
					since = frame
				}
				if arrived != last && now.Sub(since) > timeout {
					ended = withReason(ReasonStalled, fmt.Errorf("no picture for %s while receiving data", timeout))
					c.Close()
					return
				}
			}
		}
	}()
	err := c.Wait()
	close(done)
	<-stopped
	if ended != nil {
		return ended
	}
	return err
}
