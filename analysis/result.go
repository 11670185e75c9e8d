package analysis

import (
	"slices"
	"sync"
	"time"

	"github.com/camera-exporter/camera_exporter/camera"
	"github.com/camera-exporter/camera_exporter/detector"
	"github.com/camera-exporter/camera_exporter/drift"
	"github.com/camera-exporter/camera_exporter/imagestats"
	"github.com/camera-exporter/camera_exporter/video"
)

// HistoryLength is how many analyzed pictures a Look's History holds.
const HistoryLength = 10

// Look is what the operator pages show of a camera: its session, and what
// the latest analysis a scrape made found. Reading it starts no analysis.
type Look struct {
	Name   string
	Status camera.Status
	Up     bool
	// Timeout is the camera's: a frame older than it is a camera down.
	Timeout time.Duration
	// Analyzed is when the latest analysis finished; zero before one did.
	Analyzed time.Time
	// Failed is when the latest analysis attempt failed, and Err why: the
	// picture could not be decoded or measured, the detector failed on it,
	// or it was still running at a scrape's deadline, as
	// camera_frame_analysis_success 0 says. Zero when the latest attempt
	// succeeded or none was made; a picture not arrived yet is no failure.
	Failed time.Time
	Err    string
	Seq    uint64 // of the analyzed picture
	Stats  imagestats.Stats
	// Objects counts the counted classes' objects in the analyzed
	// picture, and Detections are them, in the picture's pixels; nil when
	// the camera does not detect.
	Objects    map[string]int
	Detections []detector.Detection
	// Snapshot is the analyzed picture in BGR, downscaled, when the
	// streams keep snapshots; shared, not to be modified.
	Snapshot video.Image
	// Frozen and Difference are the frozen picture's figures, where
	// HasFrozen: once two pictures were compared (Drift.HasDifference).
	Frozen, HasFrozen bool
	Difference        float64
	// View is how the picture registers against the reference's view.
	View    drift.Registration
	HasView bool
	// Drift holds the drift scores by feature, nil without them.
	Drift         map[string]float64
	DriftCombined float64
	// Reference is the camera's reference profile, nil without one.
	Reference *drift.Profile
	// History holds the figures of the latest analyzed pictures, newest
	// first.
	History []Figures
}

// Figures are the key figures of one analysis.
type Figures struct {
	Analyzed                               time.Time
	Brightness, Contrast, DarkRatio, Sharp float64
	// Objects is the number of counted objects, -1 when the camera does
	// not detect.
	Objects int
}

// lookState is what an analysis leaves for the operator pages.
type lookState struct {
	mu         sync.Mutex // guards the fields below
	analyzed   time.Time
	failed     time.Time
	failure    string
	finished   *attempt // the latest whose own outcome was recorded
	seq        uint64
	stats      imagestats.Stats
	found      *Found
	snapshot   video.Image
	history    [HistoryLength]Figures
	historyLen int
	next       int // where the next figures go in history
}

// observe records a finished analysis of frame, at, whose detection may
// have failed.
func (l *lookState) observe(now time.Time, at *attempt, frame camera.Frame) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := at.outcome.Found
	l.finished, l.failed, l.failure = at, time.Time{}, ""
	if err := at.outcome.DetectErr; err != nil {
		l.failed, l.failure = now, err.Error()
	}
	newPicture := frame.Seq != l.seq || l.historyLen == 0
	if frame.Snapshot.Pix != nil {
		l.snapshot = frame.Snapshot
	} else if newPicture {
		l.snapshot = video.Image{} // not this picture's
	}
	l.analyzed, l.seq, l.stats, l.found = now, frame.Seq, frame.Stats, f
	if !newPicture {
		return // a key frame analyzed again: its figures are in history
	}
	figures := Figures{Analyzed: now, Brightness: frame.Stats.Brightness, Contrast: frame.Stats.Contrast,
		DarkRatio: frame.Stats.DarkRatio, Sharp: frame.Stats.Sharpness, Objects: -1}
	if f != nil {
		figures.Objects = len(f.Detections)
	}
	l.history[l.next] = figures
	l.next = (l.next + 1) % HistoryLength
	l.historyLen = min(l.historyLen+1, HistoryLength)
}

// fail records that at's attempt failed with err: the figures of the
// latest picture analyzed stay, no longer current. No picture yet, as
// after a reconnection before its first key frame, is no analysis that
// failed, and ends an earlier failure, which was another session's.
func (l *lookState) fail(now time.Time, at *attempt, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.finished, l.failed, l.failure = at, time.Time{}, ""
	if !noPicture(err) {
		l.failed, l.failure = now, err.Error()
	}
}

// cutOff records that at was still running at a scrape's deadline, unless
// it finished meanwhile: its own outcome is the latest then, and no later
// analysis starts before it finished.
func (l *lookState) cutOff(now time.Time, at *attempt) {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-at.done:
		return
	default:
	}
	if l.finished == at {
		return // recorded, about to be done
	}
	l.failed, l.failure = now, "analysis still running at the scrape's deadline"
}

// fill sets what l knows of look.
func (l *lookState) fill(look *Look) {
	l.mu.Lock()
	defer l.mu.Unlock()
	look.Analyzed, look.Seq, look.Stats, look.Snapshot = l.analyzed, l.seq, l.stats, l.snapshot
	look.Failed, look.Err = l.failed, l.failure
	if l.found != nil {
		look.Objects = l.found.Objects
		look.Detections = l.found.Detections
	}
	for i := range l.historyLen {
		look.History = append(look.History, l.history[(l.next-1-i+HistoryLength)%HistoryLength])
	}
}

// Looks returns what the operator pages show of every camera, sorted by
// name. It starts no analysis: the figures are those of the latest one.
func (a *Analyzer) Looks() []Look {
	now := time.Now()
	var looks []Look
	for _, cam := range a.cameras.Cameras() {
		looks = append(looks, a.lookOf(cam, now))
	}
	return looks
}

// Look returns what the operator pages show of the named camera.
func (a *Analyzer) Look(name string) (Look, bool) {
	cameras := a.cameras.Cameras()
	i := slices.IndexFunc(cameras, func(cam Camera) bool { return cam.Name() == name })
	if i < 0 {
		return Look{}, false
	}
	return a.lookOf(cameras[i], time.Now()), true
}

func (a *Analyzer) lookOf(cam Camera, now time.Time) Look {
	look := Look{Name: cam.Name(), Status: cam.Status(), Up: cam.Up(now), Timeout: time.Duration(cam.Config().Timeout)}
	a.mu.Lock()
	st := a.states[cam]
	a.mu.Unlock()
	if st == nil {
		return look
	}
	st.look.fill(&look)
	if st.drift != nil {
		d := st.drift.copy()
		look.Frozen, look.HasFrozen, look.Difference = d.Frozen, d.HasDifference, d.Difference
		look.View, look.HasView = d.View, d.HasView
		look.Drift, look.DriftCombined = d.Scores, d.Combined
		look.Reference = d.Reference
	}
	return look
}
