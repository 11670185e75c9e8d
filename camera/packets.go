package camera

import "github.com/pion/rtp"

// packetsIn is what one session knows of the RTP packets it receives
// before they are depacketized.
type packetsIn struct {
	seq seqTracker // on gortsplib's reader goroutine only
}

// countPacket counts a packet's losses and reports whether it is to be
// depacketized: a duplicate is not.
func (s *Stream) countPacket(in *packetsIn, pkt *rtp.Packet) bool {
	lost, duplicate := in.seq.push(pkt.SequenceNumber)
	s.packetsLost.Add(lost)
	return !duplicate
}
