package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"

	"github.com/camera-exporter/camera_exporter/config"
)

// reloader runs the configuration reloads that SIGHUP and POST /-/reload
// ask for in one goroutine, one at a time, as blackbox_exporter does.
type reloader struct {
	reload   func(context.Context) error
	requests chan chan<- error
	stopping chan struct{} // closed by stop
	stopOnce sync.Once
	cancel   context.CancelFunc // ends the context of the reload in progress
	done     chan struct{}      // closed when the goroutine has ended
}

// startReloader calls reload on every signal from hup and every request,
// until stop. reload logs its outcome; a failed reload keeps the last good
// configuration. reload's context ends with stop: a reload stuck on a file
// must not keep the shutdown from closing the cameras.
func startReloader(reload func(context.Context) error, hup <-chan os.Signal) *reloader {
	ctx, cancel := context.WithCancelCause(context.Background())
	r := &reloader{
		reload:   reload,
		requests: make(chan chan<- error),
		stopping: make(chan struct{}),
		cancel:   func() { cancel(errShuttingDown) },
		done:     make(chan struct{}),
	}
	go r.run(ctx, hup)
	return r
}

var errShuttingDown = errors.New("shutting down")

// reloadConfig reloads the configuration file at path and logs the outcome.
// A reload that the shutdown ends is no fault of the file: it is logged at
// info level, and SafeConfig leaves the reload gauge as it was.
func reloadConfig(ctx context.Context, sc *config.SafeConfig, path string, logger *slog.Logger) error {
	err := sc.Reload(ctx, path)
	switch {
	case err == nil:
		logger.Info("Reloaded config file", "cameras", len(sc.Get().Cameras))
	case errors.Is(err, errShuttingDown):
		logger.Info("Config reload abandoned at shutdown", "err", err)
	default:
		logger.Error("Error reloading config", "err", err)
	}
	return err
}

func (r *reloader) run(ctx context.Context, hup <-chan os.Signal) {
	defer close(r.done)
	for {
		select { // stopping first, whatever else is pending
		case <-r.stopping:
			return
		default:
		}
		select {
		case <-r.stopping:
			return
		case <-hup:
			_ = r.reload(ctx) // logged by reload
		case result := <-r.requests:
			result <- r.reload(ctx) // buffered: the requester may be gone
		}
	}
}

// ServeHTTP reloads the configuration and waits for the outcome: 200, or
// 500 with the error. A client that goes away does not cancel the reload.
func (r *reloader) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	result := make(chan error, 1)
	select {
	case r.requests <- result:
	case <-r.stopping:
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	case <-req.Context().Done():
		return
	}
	select {
	case err := <-result:
		if err != nil {
			http.Error(w, fmt.Sprintf("failed to reload config: %s", err), http.StatusInternalServerError)
		}
	case <-req.Context().Done():
	}
}

// stop ends the goroutine: it ends the context of a reload in progress and
// waits for the reload to return until ctx ends. Once stop has returned nil
// no reload starts anymore.
func (r *reloader) stop(ctx context.Context) error {
	r.stopOnce.Do(func() {
		close(r.stopping)
		r.cancel()
	})
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("configuration reload still running: %w", context.Cause(ctx))
	}
}
