package camera

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
)

// maxRedirects bounds the redirects a session follows: gortsplib follows
// them recursively without limit, so a camera redirecting to itself would
// grow the stack until the process died.
const maxRedirects = 5

var errTooManyRedirects = fmt.Errorf("too many redirects (%d)", maxRedirects)

// redirects guards a session's redirects through gortsplib's hooks, which
// it calls on the client's goroutine, one at a time. Following a redirect
// means a new connection: the dial is where one is refused.
type redirects struct {
	credentials bool   // the camera has credentials, which gortsplib sends to any redirect target
	configured  string // host:port of the first dial, the camera's URL
	followed    int
	allow       func(addr string) error // nil: any host
	// bypass is given to the connections of a plain rtsp session: a
	// redirect to rtsps is told by its TLS handshake.
	bypass  *rtpBypass
	unpaced func() bool // for newBufferedConn
}

// onResponse counts the responses that gortsplib follows as redirects.
func (r *redirects) onResponse(res *base.Response) {
	if res.StatusCode >= base.StatusMovedPermanently && res.StatusCode <= base.StatusUseProxy && len(res.Header["Location"]) == 1 {
		r.followed++
	}
}

// dialContext dials for gortsplib, unless the dial follows one redirect
// too many, or takes the credentials to another host:port than the one
// configured.
func (r *redirects) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	switch {
	case r.configured == "":
		r.configured = addr
	case r.followed > maxRedirects:
		return nil, withReason(ReasonRedirectLimit, errTooManyRedirects)
	case r.credentials && !strings.EqualFold(addr, r.configured):
		return nil, fmt.Errorf("camera redirected to %s, not %s: not following it with the credentials", addr, r.configured)
	}
	if r.allow != nil {
		if err := r.allow(addr); err != nil {
			return nil, err
		}
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return newBufferedConn(conn, r.bypass, r.unpaced), nil
}
