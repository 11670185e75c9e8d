package config

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// SafeConfig holds the configuration in force. Reload swaps it only when the
// new file is valid, so a bad edit keeps the last good configuration.
type SafeConfig struct {
	reloadMu    sync.Mutex // serializes reloads, so that they apply in order
	load        func(path string) (*Config, error)
	loadTimeout time.Duration
	apply       func(*Config) error
	status      prometheus.Gauge
	time        prometheus.Gauge

	mu sync.RWMutex // guards c
	c  *Config
}

// NewSafeConfig registers the reload metrics. apply puts a configuration
// that loaded in force; if it fails, as when a model does not load, the
// reload fails and apply must have left the running configuration as it
// was. A reload fails when loading the file and the files it names takes
// longer than loadTimeout.
func NewSafeConfig(reg prometheus.Registerer, apply func(*Config) error, loadTimeout time.Duration) *SafeConfig {
	sc := &SafeConfig{
		c:           &Config{},
		load:        Load,
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
// changes the running cameras.
func (sc *SafeConfig) Reload(ctx context.Context, path string) error {
	sc.reloadMu.Lock()
	defer sc.reloadMu.Unlock()
	c, err := sc.loadWithin(ctx, path)
	if err == nil {
		err = sc.apply(c)
	}
	if err != nil {
		sc.status.Set(0)
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
// behind, holding no lock, and what it loads late is dropped unread.
func (sc *SafeConfig) loadWithin(ctx context.Context, path string) (*Config, error) {
	type loaded struct {
		c   *Config
		err error
	}
	result := make(chan loaded, 1) // buffered: a late load ends unread
	go func() {
		c, err := sc.load(path)
		result <- loaded{c, err}
	}()
	deadline := time.NewTimer(sc.loadTimeout)
	defer deadline.Stop()
	select {
	case r := <-result:
		return r.c, r.err
	case <-deadline.C:
		return nil, fmt.Errorf("%s: loading took longer than %s (--config.reload-timeout), gave up; a file it names may block its reader", path, sc.loadTimeout)
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: loading abandoned: %w", path, context.Cause(ctx))
	}
}

// Get returns the configuration in force; callers must not modify it.
func (sc *SafeConfig) Get() *Config {
	sc.mu.RLock()
	defer sc.mu.RUnlock()
	return sc.c
}
