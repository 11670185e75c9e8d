package config

import (
	"os"
	"path/filepath"

	"github.com/prometheus/common/model"
)

// ReferenceOptions say where a camera's reference profile is and how it is
// learned. The drift scores compare the camera's recent frames with it.
type ReferenceOptions struct {
	// Dir holds the reference of each camera as <Dir>/<camera>.json, built
	// by `camera_exporter reference build` or learned by calibration. Load
	// makes a relative path relative to the configuration file.
	Dir string `yaml:"dir,omitempty"`
	// Calibration, when set, learns the reference of a camera that has none
	// from its frames for this long, then saves it in Dir, so that restarts
	// keep it.
	Calibration model.Duration `yaml:"calibration,omitempty"`
	// Window is how far back the recent distributions go. Built-in: 1h.
	Window model.Duration `yaml:"window,omitempty"`
}

// ReferenceFile is the camera's reference profile, or "" without a
// reference directory.
func (c Camera) ReferenceFile() string {
	if c.Reference.Dir == "" {
		return ""
	}
	if c.referenceName != "" {
		return filepath.Join(c.Reference.Dir, c.referenceName+".json")
	}
	return filepath.Join(c.Reference.Dir, c.Name+".json")
}

// checkReferenceFile checks the camera's reference file, if it has one
// already, by its kind and size alone: a FIFO, a device or a huge file
// there fails the configuration, while one that cannot be read, as one
// written by root, is the camera's runtime state, which the drift
// refresh warns about for that camera alone.
func (c Camera) checkReferenceFile(r *reporter) {
	if !validName.MatchString(c.Name) { // check reported it; not a path
		return
	}
	path := c.ReferenceFile()
	if path == "" {
		return
	}
	done := r.progress.reading(referenceFile.What, path)
	fi, err := os.Stat(path)
	done()
	// Missing, it learns its reference or goes without; out of reach, the
	// drift refresh warns about it.
	if err != nil {
		return
	}
	if err := referenceFile.Check(path, fi); err != nil {
		r.errorf("reference", "reference file: %v", err)
	}
}

// checkFilled validates options that defaults were filled into: a
// camera may calibrate with the defaults' directory.
func (o ReferenceOptions) checkFilled(r *reporter) {
	if o.Calibration > 0 && o.Dir == "" {
		r.errorf("reference", "reference.calibration needs reference.dir, where the learned reference is saved")
	}
}

func (o *ReferenceOptions) resolve(dir string) {
	if o.Dir != "" && !filepath.IsAbs(o.Dir) {
		o.Dir = filepath.Join(dir, o.Dir)
	}
}

func (o *ReferenceOptions) fill(d ReferenceOptions) {
	if o.Dir == "" {
		o.Dir = d.Dir
	}
	if o.Calibration == 0 {
		o.Calibration = d.Calibration
	}
	if o.Window == 0 {
		o.Window = d.Window
	}
}
