package camera

import "github.com/bluenviron/gortsplib/v4/pkg/base"

// answerParameterRequest is gortsplib's OnServerRequest hook. Cameras send
// GET_PARAMETER or SET_PARAMETER of their own during PLAY, as keepalives or
// notices; gortsplib answers only OPTIONS and ends the session on anything
// else (ErrClientUnhandledMethod), so such a camera reconnected in a loop.
// Renamed OPTIONS, they get gortsplib's answer to OPTIONS, 200 with their
// CSeq: after this hook, Client.handleServerRequest reads only the
// request's Method and CSeq header, and the request is the reader's own,
// read afresh for each message. Other requests, ANNOUNCE or REDIRECT,
// still end the session.
func answerParameterRequest(req *base.Request) {
	if req.Method == base.GetParameter || req.Method == base.SetParameter {
		req.Method = base.Options
	}
}
