package main

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestServerTimeouts checks, with the timeouts shortened, that the server
// closes a keep-alive connection left idle and one whose request never
// ends, and that the read timeout neither cancels nor cuts off a scrape.
func TestServerTimeouts(t *testing.T) {
	for _, tc := range []struct {
		name, request string
		keepAlive     bool // the server answers and keeps the connection
	}{
		{"idle keep-alive", "GET / HTTP/1.1\r\nHost: exporter\r\n\r\n", true},
		// The read timeout must not cut off a long scrape.
		{"scrape longer than the read timeout", "GET /slow HTTP/1.1\r\nHost: exporter\r\n\r\n", true},
		// As a reload whose body never comes.
		{"stalled body", "POST / HTTP/1.1\r\nHost: exporter\r\nContent-Length: 10\r\n\r\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			const timeout = 500 * time.Millisecond
			srv := newServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/slow" { // as a scrape, until its context ends
					select {
					case <-time.After(3 * timeout):
					case <-r.Context().Done():
					}
				}
				if _, err := io.Copy(io.Discard, r.Body); err == nil && r.Context().Err() == nil {
					io.WriteString(w, "ok") //nolint:errcheck // the test reads it
				}
			}), timeout, timeout)
			go srv.Serve(l) //nolint:errcheck // ends with Close
			defer srv.Close()

			conn, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, tc.request); err != nil {
				t.Fatal(err)
			}
			// Only ends a test whose server keeps the connection.
			conn.SetReadDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck // a net.Conn's
			got, err := io.ReadAll(conn)
			if err != nil {
				t.Fatalf("the server kept the connection open: %v", err)
			}
			answer := string(got)
			if tc.keepAlive && (!strings.HasPrefix(answer, "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(answer, "\r\n\r\nok") ||
				strings.Contains(answer, "Connection: close")) {
				t.Errorf("answered %q, want 200 ok on a connection kept alive", answer)
			}
		})
	}
}

func TestExternalURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://box-1.example/camera/": "https://box-1.example/camera",
		"http://10.0.0.5:9845":          "http://10.0.0.5:9845",
		"https://u:p@box-1.example/":    "",
		"box-1.example:9845":            "",
		"ftp://box-1.example/":          "",
		"https://box-1.example/?a=b":    "",
		"https:///path":                 "",
	} {
		got, err := parseExternalURL(in)
		if got != want || (err == nil) != (want != "") {
			t.Errorf("parseExternalURL(%q) = %q, %v; want %q", in, got, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "u:p") {
			t.Errorf("parseExternalURL(%q) error discloses the credentials: %v", in, err)
		}
	}
}
