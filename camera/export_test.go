package camera

// BypassedPackets counts the packets the stream's connections handed on
// before gortsplib read them (rtpBypass), for the tests of package
// camera_test.
func (s *Stream) BypassedPackets() uint64 { return s.session.bypassed.Load() }
