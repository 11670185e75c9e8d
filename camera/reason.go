package camera

import (
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
)

// Reason classes why a camera's session ended, so that an operator tells a
// wrong password from a dead network without reading logs. The set is
// small and fixed: it is the reason label of camera_reconnects_total.
type Reason int

// The reasons a session ends.
const (
	// ReasonRefused: nothing accepts connections at the camera's address,
	// or no route leads there.
	ReasonRefused Reason = iota
	// ReasonTimeout: the camera did not answer in time.
	ReasonTimeout
	// ReasonAuth: the camera refused the credentials.
	ReasonAuth
	// ReasonRedirectLimit: the camera redirected too often.
	ReasonRedirectLimit
	// ReasonStalled: the session was up, but the video stopped.
	ReasonStalled
	// ReasonClosed: the camera closed the connection or the session.
	ReasonClosed
	// ReasonProtocol: anything else the camera said or sent that ended the
	// session: an error status, a stream without usable video, malformed
	// answers.
	ReasonProtocol
	numReasons
)

var reasonNames = [numReasons]string{"refused", "timeout", "auth", "redirect_limit", "stalled", "closed", "protocol"}

func (r Reason) String() string { return reasonNames[r] }

// Reasons lists every reason, in a stable order.
func Reasons() []Reason {
	out := make([]Reason, numReasons)
	for i := range out {
		out[i] = Reason(i)
	}
	return out
}

// reasonError is a session error whose reason is known where it is made.
type reasonError struct {
	reason Reason
	err    error
}

func (e *reasonError) Error() string { return e.err.Error() }
func (e *reasonError) Unwrap() error { return e.err }

// withReason marks err as ending a session for reason.
func withReason(reason Reason, err error) error { return &reasonError{reason: reason, err: err} }

// reasonOf classes the error a session ended with.
func reasonOf(err error) Reason {
	var re *reasonError
	var status liberrors.ErrClientBadStatusCode
	var netErr net.Error
	switch {
	case errors.As(err, &re):
		return re.reason
	case errors.As(err, &status):
		if status.Code == base.StatusUnauthorized || status.Code == base.StatusForbidden {
			return ReasonAuth
		}
		return ReasonProtocol
	case errors.As(err, new(liberrors.ErrClientAuthSetup)):
		return ReasonAuth
	// No packet for the read timeout while playing: the video stopped.
	case errors.As(err, new(liberrors.ErrClientTCPTimeout)), errors.As(err, new(liberrors.ErrClientUDPTimeout)):
		return ReasonStalled
	case errors.As(err, new(liberrors.ErrClientRequestTimedOut)), errors.As(err, &netErr) && netErr.Timeout():
		return ReasonTimeout
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.As(err, new(*net.DNSError)):
		return ReasonRefused
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return ReasonClosed
	}
	return ReasonProtocol
}
