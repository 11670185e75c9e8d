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
}

// countPacket counts a packet's losses and reports whether it is to be
// depacketized: a duplicate is not.
func (s *Stream) countPacket(in *packetsIn, pkt *rtp.Packet) bool {
	in.arrived.Add(1)
	lost, duplicate := in.seq.push(pkt.SequenceNumber)
	s.packetsLost.Add(lost)
	return !duplicate
}

// waitPicture waits for the session to end, and ends it when packets keep
// arriving but no frame came of them for the camera's timeout. gortsplib's
// read timeout only ends a session that receives nothing; one whose packets
// are all rejected, as after an encoder restart with another SSRC, would
// stay up without video forever. A new session resynchronizes.
func (s *Stream) waitPicture(c *gortsplib.Client, in *packetsIn, start time.Time) error {
	timeout := time.Duration(s.cfg.Timeout)
	done, stopped := make(chan struct{}), make(chan struct{})
	var noPicture error // set before stopped is closed
	go func() {
		defer close(stopped)
		ticker := time.NewTicker(min(timeout/2, time.Second))
		defer ticker.Stop()
		arrived := in.arrived.Load()
		for {
			select {
			case <-done:
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
					noPicture = withReason(ReasonStalled, fmt.Errorf("no picture for %s while receiving data", timeout))
					c.Close()
					return
				}
			}
		}
	}()
	err := c.Wait()
	close(done)
	<-stopped
	if noPicture != nil {
		return noPicture
	}
	return err
}
