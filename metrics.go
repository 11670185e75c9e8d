package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/camera-exporter/camera_exporter/collector"
)

// metricsHandler gathers the camera collectors with the scrape's deadline,
// plus the exporter's own metrics. A per-request registry carries the
// deadline, as blackbox_exporter does for probes. Scrapes beyond
// maxRequests at once get 503 (0: no limit), as with node_exporter's
// --web.max-requests.
func metricsHandler(cc *collector.CameraCollector, exporterMetrics prometheus.Gatherer, timeoutOffset float64, maxRequests int, logger *slog.Logger) http.Handler {
	opts := promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(logger.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
	}
	// Not opts.MaxRequestsInFlight: promhttp counts per handler, and each
	// scrape has its own.
	var inFlight chan struct{}
	if maxRequests > 0 {
		inFlight = make(chan struct{}, maxRequests)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if inFlight != nil {
			select {
			case inFlight <- struct{}{}:
				defer func() { <-inFlight }()
			default:
				http.Error(w, fmt.Sprintf("Limit of concurrent requests reached (%d), try again later.", maxRequests),
					http.StatusServiceUnavailable)
				return
			}
		}
		ctx, cancel := scrapeContext(r, timeoutOffset)
		defer cancel()
		registry := prometheus.NewRegistry()
		registry.MustRegister(cc.WithContext(ctx))
		promhttp.HandlerFor(prometheus.Gatherers{exporterMetrics, registry}, opts).ServeHTTP(w, r)
	})
}

// scrapeContext ends when Prometheus gives up on the scrape, less offset.
// A timeout too short to leave the offset keeps half of itself: a scrape
// that outlives Prometheus' timeout fails, and every series of the target
// goes stale with it.
func scrapeContext(r *http.Request, offset float64) (context.Context, context.CancelFunc) {
	seconds, err := strconv.ParseFloat(r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds"), 64)
	if err != nil || !(seconds > 0) {
		return context.WithCancel(r.Context())
	}
	return context.WithTimeout(r.Context(), time.Duration(max(seconds-offset, seconds/2)*float64(time.Second)))
}
