package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/promslog"

	"github.com/camera-exporter/camera_exporter/analysis"
	"github.com/camera-exporter/camera_exporter/collector"
	"github.com/camera-exporter/camera_exporter/detector"
	"github.com/camera-exporter/camera_exporter/internal/testutil"
)

func TestScrapeContext(t *testing.T) {
	for _, tc := range []struct {
		header string
		offset float64
		want   time.Duration // 0: no deadline
	}{
		{"10", 0.5, 9500 * time.Millisecond},
		{"1", 0.5, 500 * time.Millisecond},
		// Too short for the offset: half of Prometheus' timeout, not none.
		{"0.2", 0.5, 100 * time.Millisecond},
		{"0.8", 0.5, 400 * time.Millisecond},
		{"", 0.5, 0},
		{"nonsense", 0.5, 0},
		{"-1", 0.5, 0},
	} {
		r := httptest.NewRequest("GET", "/metrics", nil)
		if tc.header != "" {
			r.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", tc.header)
		}
		before := time.Now()
		ctx, cancel := scrapeContext(r, tc.offset)
		deadline, ok := ctx.Deadline()
		cancel()
		switch {
		case tc.want == 0 && ok:
			t.Errorf("timeout %q: deadline in %v, want none", tc.header, deadline.Sub(before))
		case tc.want != 0 && !ok:
			t.Errorf("timeout %q: no deadline, want one in %v", tc.header, tc.want)
		case tc.want != 0:
			// The deadline is computed from a clock read after before.
			if got := deadline.Sub(before); got < tc.want || got > tc.want+time.Second {
				t.Errorf("timeout %q: deadline in %v, want %v", tc.header, got, tc.want)
			}
		}
	}
}

// noCameras is a configuration without cameras.
type noCameras struct{}

func (noCameras) Cameras() []analysis.Camera  { return nil }
func (noCameras) Detector() detector.Detector { return nil }

// TestMetricsHandlerMaxRequests holds scrapes in the gatherer and checks
// that those beyond the limit get 503 at once, and that a finished scrape
// frees its place.
func TestMetricsHandlerMaxRequests(t *testing.T) {
	for _, tc := range []struct {
		limit, scrapes, rejected int
	}{
		{limit: 1, scrapes: 3, rejected: 2},
		{limit: 2, scrapes: 3, rejected: 1},
		{limit: 3, scrapes: 3, rejected: 0},
		{limit: 0, scrapes: 5, rejected: 0}, // no limit
	} {
		t.Run(fmt.Sprintf("limit %d, %d scrapes", tc.limit, tc.scrapes), func(t *testing.T) {
			cc, err := collector.NewCameraCollector(noCameras{}, promslog.NewNopLogger())
			if err != nil {
				t.Fatal(err)
			}
			var held atomic.Int32
			release := make(chan struct{})
			gatherer := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
				held.Add(1)
				<-release
				return nil, nil
			})
			srv := httptest.NewServer(metricsHandler(cc, gatherer, 0.5, tc.limit, promslog.NewNopLogger()))
			defer srv.Close()
			get := func() int {
				resp, err := http.Get(srv.URL)
				if err != nil {
					t.Error(err)
					return 0
				}
				defer resp.Body.Close()
				io.Copy(io.Discard, resp.Body) //nolint:errcheck // only the status counts
				return resp.StatusCode
			}

			var rejected atomic.Int32
			codes := make(chan int, tc.scrapes)
			for range tc.scrapes {
				go func() {
					code := get()
					if code == http.StatusServiceUnavailable {
						rejected.Add(1)
					}
					codes <- code
				}()
			}
			testutil.WaitFor(t, "every scrape held or rejected", 10*time.Second, func() bool {
				return int(held.Load()+rejected.Load()) == tc.scrapes
			})
			close(release)
			for range tc.scrapes {
				if code := <-codes; code != http.StatusOK && code != http.StatusServiceUnavailable {
					t.Errorf("a scrape got %d, want 200 or 503", code)
				}
			}
			if got := int(rejected.Load()); got != tc.rejected {
				t.Errorf("%d of %d scrapes got 503, want %d", got, tc.scrapes, tc.rejected)
			}
			if code := get(); code != http.StatusOK {
				t.Errorf("a scrape after the others got %d, want 200", code)
			}
		})
	}
}
