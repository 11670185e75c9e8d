package analysis

import (
	"log/slog"
	"sync"
)

// A picture counts as dark from darkEnter of dark pixels, and as lit again
// below darkLeave, so that a picture near the edge logs once, not on every
// scrape.
const (
	darkEnter = 0.8
	darkLeave = 0.6
)

// events logs the changes in a camera's analyses, once each, with the
// camera's name as a key that Loki can index: the metrics carry the values,
// the log what happened when.
type events struct {
	logger *slog.Logger // with the camera's name

	mu                         sync.Mutex // guards the fields below
	analysisFails, detectFails bool
	dark                       bool
}

// analyzed logs what changed with a finished analysis.
func (e *events) analyzed(a *Analysis) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if noPicture(a.Err) {
		return // nothing was analyzed, and nothing failed
	}
	e.analysisFails = e.change(e.analysisFails, a.Err, "Frame analysis failing", "Frame analysis recovered")
	if a.Err != nil {
		return
	}
	switch ratio := a.Stats.DarkRatio; {
	case !e.dark && ratio >= darkEnter:
		e.dark = true
		e.logger.Warn("Camera picture dark", "dark_pixels_ratio", ratio, "brightness_ratio", a.Stats.Brightness)
	case e.dark && ratio < darkLeave:
		e.dark = false
		e.logger.Info("Camera picture no longer dark", "dark_pixels_ratio", ratio, "brightness_ratio", a.Stats.Brightness)
	}
	if a.Found != nil || a.DetectErr != nil {
		e.detectFails = e.change(e.detectFails, a.DetectErr, "Object detection failing", "Object detection recovered")
	}
}

// change logs a failure that starts or ends, and returns whether it fails.
func (e *events) change(failed bool, err error, failing, recovered string) bool {
	switch {
	case err != nil && !failed:
		e.logger.Warn(failing, "err", err)
	case err == nil && failed:
		e.logger.Info(recovered)
	}
	return err != nil
}
