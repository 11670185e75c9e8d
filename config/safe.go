package config

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// SafeConfig holds the configuration in force. Reload swaps it only when the
// new file is valid, so a bad edit keeps the last good configuration.
type SafeConfig struct {
	reloadMu sync.Mutex // serializes reloads, so that they apply in order
	apply    func(*Config) error
	status   prometheus.Gauge
	time     prometheus.Gauge

	mu sync.RWMutex // guards c
	c  *Config
}

// NewSafeConfig registers the reload metrics. apply puts a configuration
// that loaded in force; if it fails, as when a model does not load, the
// reload fails and apply must have left the running configuration as it
// was.
func NewSafeConfig(reg prometheus.Registerer, apply func(*Config) error) *SafeConfig {
	sc := &SafeConfig{
		c:     &Config{},
		apply: apply,
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
// that Get takes: only the swap holds it.
func (sc *SafeConfig) Reload(path string) error {
	sc.reloadMu.Lock()
	defer sc.reloadMu.Unlock()
	c, err := Load(path)
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

// Get returns the configuration in force; callers must not modify it.
func (sc *SafeConfig) Get() *Config {
	sc.mu.RLock()
	defer sc.mu.RUnlock()
	return sc.c
}
