package camera

// Sequence number validation after RFC 3550 appendix A.1. The RFC's
// MAX_MISORDER is 100; seqWindow must exceed it, so that every packet the
// validation accepts as late still falls in the window of received ones.
const (
	seqMod        = 1 << 16
	minSequential = 2    // packets in order before a new source is trusted
	maxDropout    = 3000 // a larger jump forward is a restart, not a loss
	maxMisorder   = 100  // a packet at most this much behind is late, not a restart
	seqWindow     = 128  // the sequence numbers whose reception is remembered
)

// seqTracker counts lost RTP packets from sequence numbers: expected minus
// received, as RFC 3550 A.1, except that a packet counts as received once,
// so duplicates neither hide losses nor add to them. gortsplib's own count
// over TCP takes every duplicate for 65535 lost packets.
//
// A sequence number counts as lost once seqWindow later ones have been
// seen without it: a packet late by less than that is no loss, and the
// count only grows, as a Prometheus counter must. Losses among the last
// seqWindow sequence numbers before the source restarts its numbering, or
// before the session ends, are not counted.
//
// A tracker belongs to one session, on gortsplib's reader goroutine.
type seqTracker struct {
	started   bool
	probation int    // sequential packets still needed to trust the source
	max       uint64 // extended highest sequence number (cycles included)
	base      uint64 // the first extended sequence number counted
	badSeq    uint32 // after a large jump: the number that confirms a restart
	seen      [seqWindow]bool
}

// push records a packet's sequence number. It returns how many earlier
// sequence numbers became lost with it, and whether the packet is a
// duplicate of one received already (to be dropped: depacketizers take a
// repeated fragment for a new one).
func (t *seqTracker) push(seq uint16) (lost uint64, duplicate bool) {
	if !t.started {
		// A.1 init_seq(seq) with max_seq = seq - 1, then update_seq(seq).
		t.started = true
		t.probation = minSequential
		t.max = uint64(seq - 1)
	}
	udelta := seq - uint16(t.max)
	switch {
	case t.probation > 0:
		// A new source is trusted after minSequential packets in order.
		if udelta == 1 {
			t.probation--
		} else {
			t.probation = minSequential - 1
		}
		t.max = uint64(seq)
		if t.probation == 0 {
			t.restart(seq)
		}
		return 0, false
	case udelta == 0:
		return 0, true
	case udelta < maxDropout:
		return t.advance(t.max + uint64(udelta)), false
	case udelta <= seqMod-maxMisorder:
		// A large jump: the source restarted if the next packet follows it.
		if uint32(seq) == t.badSeq {
			t.restart(seq)
		} else {
			t.badSeq = uint32(seq+1) % seqMod
		}
		return 0, false
	default:
		// Late (reordered) or repeated.
		behind := uint64(uint16(t.max) - seq)
		if behind > t.max-t.base {
			return 0, false // from before counting started
		}
		ext := t.max - behind
		if t.seen[ext%seqWindow] {
			return 0, true
		}
		t.seen[ext%seqWindow] = true
		return 0, false
	}
}

// restart starts counting at seq, as A.1's init_seq.
func (t *seqTracker) restart(seq uint16) {
	t.max, t.base = uint64(seq), uint64(seq)
	t.badSeq = seqMod + 1 // no sequence number
	t.seen = [seqWindow]bool{}
	t.seen[t.max%seqWindow] = true
}

// advance moves the highest sequence number forward to ext and returns
// how many sequence numbers left the window unreceived.
func (t *seqTracker) advance(ext uint64) (lost uint64) {
	steps := ext - t.max
	for i := range min(steps, seqWindow) {
		next := t.max + 1 + i
		// The slot of next held next-seqWindow until now.
		if old := next - seqWindow; next >= seqWindow && old >= t.base && !t.seen[next%seqWindow] {
			lost++
		}
		t.seen[next%seqWindow] = false
	}
	if steps > seqWindow {
		// Skipped over without ever entering the window.
		lost += steps - seqWindow
	}
	t.max = ext
	t.seen[ext%seqWindow] = true
	return lost
}
