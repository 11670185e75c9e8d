package config

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// SafeConfig holds the configuration in force. Reload swaps it only when the
// new file is valid, so a bad edit keeps the last good configuration.
type SafeConfig struct {
	reloadMu    sync.Mutex // serializes reloads, so that they apply in order
	load        func(path string, progress *loadProgress) (*Config, error)
	loadTimeout time.Duration
	apply       func(*Config) error
	status      prometheus.Gauge
	time        prometheus.Gauge
	// abandoned is a load given up on that has not returned yet, guarded
	// by reloadMu: no other starts until it returns, so that reloads on a
	// hung file system leave one blocked goroutine, not one each.
	abandoned *pendingLoad

	mu sync.RWMutex // guards c
	c  *Config
}

// pendingLoad is a load running in a goroutine of its own.
type pendingLoad struct {
	started  time.Time
	progress loadProgress
	done     chan struct{} // closed when the load has returned
	result   *Config       // set before done is closed
	err      error
}

// NewSafeConfig registers the reload metrics. apply puts a configuration
// that loaded in force; if it fails, as when a model does not load, the
// reload fails and apply must have left the running configuration as it
// was. A reload fails when loading the file and the files it names takes
// longer than loadTimeout.
func NewSafeConfig(reg prometheus.Registerer, apply func(*Config) error, loadTimeout time.Duration) *SafeConfig {
	sc := &SafeConfig{
		c:           &Config{},
		load:        load,
		loadTimeout: loadTimeout,
		apply:       apply,
		status: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "camera_exporter_config_last_reload_successful",
			Help: "Whether the last configuration reload attempt was successful.",
		}),
		time: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "camera_exporter_config_last_reload_success_timestamp_seconds",
			Help: "Timestamp of the last successful configuration reload.",
		}),
	}
	reg.MustRegister(sc.status, sc.time)
	return sc
}

// Reload loads and validates path and, if it is good, puts it in force.
// Loading and applying, which may load a model, happen outside the lock
// that Get takes: only the swap holds it. A load that outlasts the load
// timeout or ctx fails the reload; applying is not abandoned, as it
// changes the running cameras. A reload that ctx ends, as at shutdown,
// did not fail on the file's account: it leaves
// camera_exporter_config_last_reload_successful as it was, and its error
// wraps ctx's cause.
func (sc *SafeConfig) Reload(ctx context.Context, path string) error {
	sc.reloadMu.Lock()
	defer sc.reloadMu.Unlock()
	c, err := sc.loadWithin(ctx, path)
	if err == nil {
		err = sc.apply(c)
	}
	if err != nil {
		if ctx.Err() == nil {
			sc.status.Set(0)
		}
		return err
	}
	sc.mu.Lock()
	sc.c = c
	sc.mu.Unlock()
	sc.status.Set(1)
	sc.time.SetToCurrentTime()
	return nil
}

// loadWithin loads path in a goroutine of its own, and gives up on it at
// the load timeout or when ctx ends. A read that blocks, as on a hung
// network file system, cannot be interrupted: the goroutine is left
// behind, holding no lock, and what it loads late is dropped. Until it
// returns, no load starts and reloads fail at once, naming the file it
// is blocked on.
func (sc *SafeConfig) loadWithin(ctx context.Context, path string) (*Config, error) {
	if err := context.Cause(ctx); err != nil {
		return nil, fmt.Errorf("%s: not loaded: %w", path, err)
	}
	if p := sc.abandoned; p != nil {
		select {
		case <-p.done:
			sc.abandoned = nil
		default:
			return nil, fmt.Errorf("%s: not loaded: the configuration load started at %s is still blocked %s", path,
				p.started.Format(time.RFC3339), p.progress.describe())
		}
	}
	p := &pendingLoad{started: time.Now(), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.result, p.err = sc.load(path, &p.progress)
	}()
	deadline := time.NewTimer(sc.loadTimeout)
	defer deadline.Stop()
	select {
	case <-p.done:
		return p.result, p.err
	case <-deadline.C:
		sc.abandoned = p
		return nil, fmt.Errorf("%s: loading took longer than %s (--config.reload-timeout), gave up; it is still %s", path, sc.loadTimeout, p.progress.describe())
	case <-ctx.Done():
		sc.abandoned = p
		return nil, fmt.Errorf("%s: loading abandoned: %w", path, context.Cause(ctx))
	}
}

// loadProgress is the file that a load is reading, for the error of a
// reload that gives up on it: the configuration file names many files, and
// the one on a hung mount is the one to fix.
type loadProgress struct {
	file atomic.Pointer[string] // nil between files
}

// reading records that the load opens or reads path, which is what ("a
// labels file"), until done is called. It does nothing on a nil
// loadProgress.
func (p *loadProgress) reading(what, path string) (done func()) {
	if p == nil {
		return func() {}
	}
	file := what + " " + path
	p.file.Store(&file)
	return func() { p.file.Store(nil) }
}

// describe says what the load is doing, for errors: "reading a labels
// file /mnt/x/coco.names".
func (p *loadProgress) describe() string {
	if file := p.file.Load(); file != nil {
		return "reading " + *file
	}
	return "running, between files"
}

// Get returns the configuration in force; callers must not modify it.
func (sc *SafeConfig) Get() *Config {
	sc.mu.RLock()
	defer sc.mu.RUnlock()
	return sc.c
}
