package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sync"
)

// reloader runs the configuration reloads that SIGHUP and POST /-/reload
// ask for in one goroutine, one at a time, as blackbox_exporter does.
type reloader struct {
	reload   func() error
	requests chan chan<- error
	stopping chan struct{} // closed by stop
	stopOnce sync.Once
	done     chan struct{} // closed when the goroutine has ended
}

// startReloader calls reload on every signal from hup and every request,
// until stop. reload logs its outcome; a failed reload keeps the last good
// configuration.
func startReloader(reload func() error, hup <-chan os.Signal) *reloader {
	r := &reloader{
		reload:   reload,
		requests: make(chan chan<- error),
		stopping: make(chan struct{}),
		done:     make(chan struct{}),
	}
	go r.run(hup)
	return r
}

func (r *reloader) run(hup <-chan os.Signal) {
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
			_ = r.reload() // logged by reload
		case result := <-r.requests:
			result <- r.reload() // buffered: the requester may be gone
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

// stop ends the goroutine, waiting for a reload in progress until ctx ends.
// Once stop has returned nil no reload starts anymore.
func (r *reloader) stop(ctx context.Context) error {
	r.stopOnce.Do(func() { close(r.stopping) })
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("configuration reload still running: %w", context.Cause(ctx))
	}
}
