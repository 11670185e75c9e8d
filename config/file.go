package config

import (
	"io/fs"

	"github.com/camera-exporter/camera_exporter/internal/boundedfile"
)

// The kinds of file that the configuration names, and the most that one
// may hold.
var (
	configFile   = boundedfile.Kind{What: "a configuration file", Limit: 16 << 20}
	labelsFile   = boundedfile.Kind{What: "a labels file", Limit: 1 << 20}
	passwordFile = boundedfile.Kind{What: "a password file", Limit: 4 << 10}
	// The largest detection models that OpenCV runs are a few hundred MB.
	modelWeights = boundedfile.Kind{What: "model weights", Limit: 1 << 30}
	// Text descriptions of a network: Darknet .cfg, Caffe .prototxt.
	modelDescription = boundedfile.Kind{What: "a network description", Limit: 16 << 20}
	// drift.MaxProfileSize, which drift.Load enforces as the camera reads
	// it; repeated as this package does not import drift.
	referenceFile = boundedfile.Kind{What: "a reference profile", Limit: 4 << 20}
)

// readFile is boundedfile.Read recording the file in r's load progress.
func (r *reporter) readFile(path string, kind boundedfile.Kind) ([]byte, error) {
	defer r.progress.reading(kind.What, path)()
	return boundedfile.Read(path, kind)
}

// statFile checks that path is a regular file of at most kind.Limit bytes
// without reading it, recording it in r's load progress, and returns its
// information.
func (r *reporter) statFile(path string, kind boundedfile.Kind) (fs.FileInfo, error) {
	defer r.progress.reading(kind.What, path)()
	f, fi, err := boundedfile.Open(path, kind)
	if err != nil {
		return nil, err
	}
	f.Close()
	return fi, nil
}
