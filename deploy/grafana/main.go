// Command grafana writes the Grafana dashboard of camera_exporter,
// dashboards/camera.json, from the Go code in this module. Run it from this
// directory after changing the dashboard, with go generate or go run .; the
// tests fail while the committed JSON differs from what the code generates.
//
// It is a module of its own so that the exporter does not depend on the
// Grafana Foundation SDK or on the PromQL parser its tests use.
package main

//go:generate go run .

import (
	"fmt"
	"os"
	"path/filepath"
)

// dashboardFile is where the dashboard goes, relative to this directory.
var dashboardFile = filepath.Join("dashboards", "camera.json")

func main() {
	out, err := dashboardJSON()
	if err != nil {
		fmt.Fprintln(os.Stderr, "building the dashboard:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(dashboardFile, out, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
