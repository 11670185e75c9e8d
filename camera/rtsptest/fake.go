package rtsptest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Fake is a raw RTSP server on 127.0.0.1 that answers every request with
// its handler, for tests of cameras that misbehave in ways that gortsplib's
// server cannot: redirect loops, foreign redirects, odd authentication.
// It records every request it receives, and the responses of the client
// to requests of its own (FakeResponse.Then).
type Fake struct {
	// Addr is the host:port the fake listens on.
	Addr string

	handler func(FakeRequest) FakeResponse
	ln      net.Listener
	wg      sync.WaitGroup

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	requests []FakeRequest
}

// FakeRequest is a request as a Fake received it. A response of the client
// to a request the fake sent (FakeResponse.Then) is recorded too, with
// Method FakeResponseMethod and URL its status, "200 OK": it is not
// answered.
type FakeRequest struct {
	Method string
	URL    string
	Header textproto.MIMEHeader
	Body   []byte
	// Conn numbers the connection the request came on, from 1.
	Conn int
}

// FakeResponse is a Fake's answer. The fake adds the request's CSeq, and
// Content-Length when there is a body.
type FakeResponse struct {
	Status int
	Header map[string][]string
	Body   string
	// Then are raw requests the fake writes after the response, CSeq
	// included, as a camera sending requests of its own.
	Then []string
}

// StartFake listens on a free port of 127.0.0.1 and answers each request
// with handler, which may be called from several goroutines at once.
func StartFake(handler func(FakeRequest) FakeResponse) (*Fake, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &Fake{Addr: ln.Addr().String(), handler: handler, ln: ln, conns: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go f.accept()
	return f, nil
}

// URL returns the rtsp:// URL of path on the fake.
func (f *Fake) URL(path string) string {
	return "rtsp://" + f.Addr + "/" + path
}

// Requests returns the requests received so far, in order.
func (f *Fake) Requests() []FakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

// Close stops listening, closes the connections and waits for their
// goroutines.
func (f *Fake) Close() {
	f.ln.Close()
	f.mu.Lock()
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

func (f *Fake) accept() {
	defer f.wg.Done()
	for n := 1; ; n++ {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.conns[c] = struct{}{}
		f.mu.Unlock()
		f.wg.Add(1)
		go f.serve(c, n)
	}
}

func (f *Fake) serve(c net.Conn, n int) {
	defer f.wg.Done()
	defer func() {
		f.mu.Lock()
		delete(f.conns, c)
		f.mu.Unlock()
		c.Close()
	}()
	r := textproto.NewReader(bufio.NewReader(c))
	for {
		req, err := readFakeRequest(r, n)
		if err != nil {
			return
		}
		f.mu.Lock()
		f.requests = append(f.requests, req)
		f.mu.Unlock()
		if req.Method == FakeResponseMethod {
			continue
		}
		res := f.handler(req)
		if _, err := io.WriteString(c, res.encode(req.Header.Get("CSeq"))+strings.Join(res.Then, "")); err != nil {
			return
		}
	}
}

// FakeResponseMethod is the Method of a recorded response of the client.
const FakeResponseMethod = "RESPONSE"

func readFakeRequest(r *textproto.Reader, conn int) (FakeRequest, error) {
	line, err := r.ReadLine()
	if err != nil {
		return FakeRequest{}, err
	}
	method, rest, _ := strings.Cut(line, " ")
	url, _, _ := strings.Cut(rest, " ")
	if method == "RTSP/1.0" {
		method, url = FakeResponseMethod, rest
	}
	header, err := r.ReadMIMEHeader()
	if err != nil {
		return FakeRequest{}, err
	}
	req := FakeRequest{Method: method, URL: url, Header: header, Conn: conn}
	if n, _ := strconv.Atoi(header.Get("Content-Length")); n > 0 {
		req.Body = make([]byte, n)
		if _, err := io.ReadFull(r.R, req.Body); err != nil {
			return FakeRequest{}, err
		}
	}
	return req, nil
}

func (res FakeResponse) encode(cseq string) string {
	var b strings.Builder
	// RTSP reuses HTTP's status codes for what a fake answers.
	fmt.Fprintf(&b, "RTSP/1.0 %d %s\r\nCSeq: %s\r\n", res.Status, http.StatusText(res.Status), cseq)
	for k, vs := range res.Header {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	if res.Body != "" {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(res.Body))
	}
	b.WriteString("\r\n" + res.Body)
	return b.String()
}

// fakeSDP announces one H264 track, at control URL trackID=0.
const fakeSDP = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=fake\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n" +
	"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:trackID=0\r\n"

// FakePlay answers req as a camera with one H264 track that plays over
// TCP but never sends video, so that a handler can delegate to it the
// requests it lets through. It answers other methods with 501.
func FakePlay(req FakeRequest) FakeResponse {
	switch req.Method {
	case "OPTIONS":
		return FakeResponse{Status: http.StatusOK, Header: map[string][]string{"Public": {"OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN"}}}
	case "DESCRIBE":
		return FakeResponse{Status: http.StatusOK, Header: map[string][]string{
			"Content-Type": {"application/sdp"},
			"Content-Base": {strings.TrimSuffix(req.URL, "/") + "/"},
		}, Body: fakeSDP}
	case "SETUP":
		return FakeResponse{Status: http.StatusOK, Header: map[string][]string{
			"Transport": {"RTP/AVP/TCP;unicast;interleaved=0-1"},
			"Session":   {"fake;timeout=60"},
		}}
	case "PLAY", "TEARDOWN":
		return FakeResponse{Status: http.StatusOK, Header: map[string][]string{"Session": {"fake"}}}
	}
	return FakeResponse{Status: http.StatusNotImplemented}
}
