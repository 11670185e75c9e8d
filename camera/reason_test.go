package camera

import (
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
)

// realNetErrors returns the errors of dialing an address nothing listens
// on and of reading past a deadline, as the RTSP client meets them.
func realNetErrors(t *testing.T) (refused, timeout error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	go func() {
		c, err := l.Accept()
		if err == nil {
			defer c.Close()
			time.Sleep(time.Second)
		}
	}()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now()) //nolint:errcheck // a deadline in the past
	_, timeout = c.Read(make([]byte, 1))
	l.Close()
	_, refused = net.Dial("tcp", addr)
	return refused, timeout
}

func TestReasonOf(t *testing.T) {
	refused, timeout := realNetErrors(t)
	for _, tc := range []struct {
		err  error
		want Reason
	}{
		{refused, ReasonRefused},
		{fmt.Errorf("dial: %w", refused), ReasonRefused},
		{&net.DNSError{Err: "no such host", Name: "cam.invalid", IsNotFound: true}, ReasonRefused},
		{timeout, ReasonTimeout},
		{liberrors.ErrClientRequestTimedOut{}, ReasonTimeout},
		{liberrors.ErrClientBadStatusCode{Code: 401, Message: "Unauthorized"}, ReasonAuth},
		{liberrors.ErrClientBadStatusCode{Code: 403, Message: "Forbidden"}, ReasonAuth},
		{liberrors.ErrClientAuthSetup{Err: errors.New("no supported method")}, ReasonAuth},
		{liberrors.ErrClientBadStatusCode{Code: 404, Message: "Not Found"}, ReasonProtocol},
		{liberrors.ErrClientBadStatusCode{Code: 453, Message: "Not Enough Bandwidth"}, ReasonProtocol},
		{withReason(ReasonRedirectLimit, errors.New("too many redirects")), ReasonRedirectLimit},
		{liberrors.ErrClientTCPTimeout{}, ReasonStalled},
		{liberrors.ErrClientUDPTimeout{}, ReasonStalled},
		{io.EOF, ReasonClosed},
		{fmt.Errorf("read: %w", io.ErrUnexpectedEOF), ReasonClosed},
		{errors.New("no H264, H265 or MJPEG video in the stream"), ReasonProtocol},
	} {
		if got := reasonOf(tc.err); got != tc.want {
			t.Errorf("reasonOf(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

func TestReasonNames(t *testing.T) {
	var names []string
	for _, r := range Reasons() {
		names = append(names, r.String())
	}
	if got := fmt.Sprint(names); got != "[refused timeout auth redirect_limit stalled closed protocol]" {
		t.Errorf("reasons %s", got)
	}
}
