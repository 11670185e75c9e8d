package main

import (
	"net/http/httptest"
	"testing"
	"time"
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
