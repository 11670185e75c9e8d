package e2e

import (
	"net/http"
	"testing"
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
