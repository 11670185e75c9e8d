package main

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestMethods checks that only GET and HEAD reach the metrics, wherever
// they are, and that the other endpoints keep their methods.
func TestMethods(t *testing.T) {
	for _, metricsPath := range []string{"/metrics", "/"} {
		t.Run(metricsPath, func(t *testing.T) {
			e := startExporter(t, "cameras: []\n", "--web.telemetry-path="+metricsPath)
			for _, tc := range []struct {
				method, path string
				want         int
				allow        string
			}{
				{http.MethodGet, metricsPath, http.StatusOK, ""},
				{http.MethodHead, metricsPath, http.StatusOK, ""},
				{http.MethodPost, metricsPath, http.StatusMethodNotAllowed, "GET, HEAD"},
				{http.MethodTrace, metricsPath, http.StatusMethodNotAllowed, "GET, HEAD"},
				{http.MethodDelete, metricsPath, http.StatusMethodNotAllowed, "GET, HEAD"},
				{http.MethodGet, "/", http.StatusOK, ""}, // the landing page or the metrics
				{http.MethodGet, "/-/healthy", http.StatusOK, ""},
				{http.MethodGet, "/config", http.StatusOK, ""},
				{http.MethodGet, "/-/reload", http.StatusMethodNotAllowed, ""},
				{http.MethodPost, "/-/reload", http.StatusOK, ""},
				{http.MethodGet, "/probe", http.StatusBadRequest, ""}, // no target
				{http.MethodPost, "/probe", http.StatusMethodNotAllowed, "GET, HEAD"},
			} {
				req, err := http.NewRequest(tc.method, "http://"+e.addr+tc.path, nil)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Errorf("%s %s: %v", tc.method, tc.path, err)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != tc.want || resp.Header.Get("Allow") != tc.allow {
					t.Errorf("%s %s: %d, Allow %q; want %d, Allow %q", tc.method, tc.path,
						resp.StatusCode, resp.Header.Get("Allow"), tc.want, tc.allow)
				}
			}
		})
	}
}

// TestPprof checks that the runtime profiles are served only with
// --web.enable-pprof, under the metrics at "/" too.
func TestPprof(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{nil, http.StatusNotFound},
		{[]string{"--web.enable-pprof"}, http.StatusOK},
		{[]string{"--web.enable-pprof", "--web.telemetry-path=/"}, http.StatusOK},
	} {
		e := startExporter(t, "cameras: []\n", tc.args...)
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1"} {
			resp, err := http.Get("http://" + e.addr + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("%v: GET %s: %d, want %d", tc.args, path, resp.StatusCode, tc.want)
			}
		}
	}
}

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
