// Package pages serves the operator pages: /cameras, a card per camera with
// its state, its latest analysis' figures and, with snapshots enabled, its
// analyzed picture with the detector's boxes next to its reference view;
// /cameras/<name>, one camera with its latest analyses; and the pictures.
//
// The pages read what the scrapes' analyses left: a page starts no
// analysis, and a picture is drawn and encoded when it is asked for, once
// per analyzed frame.
package pages

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/camera-exporter/camera_exporter/analysis"
)

//go:embed templates/*.html
var templates embed.FS

// Cameras gives the pages what they show; *analysis.Analyzer
// implements it.
type Cameras interface {
	Looks() []analysis.Look
	Look(name string) (analysis.Look, bool)
}

// Options configure the pages.
type Options struct {
	Cameras Cameras
	// Snapshots serves the analyzed pictures, which show people.
	Snapshots bool
	Logger    *slog.Logger
}

// Handler serves the pages.
type Handler struct {
	opts     Options
	tmpl     *template.Template
	pictures cache
	// drawing holds a token per picture being drawn, so that pictures
	// take at most half the CPUs from the scrapes; waiting counts the
	// requests in line for one.
	drawing chan struct{}
	waiting atomic.Int64
	// references keeps each camera's latest reference view drawn, since a
	// reference changes seldom and drawing one large takes tens of ms.
	references cache
}

// maxWaiting bounds the picture requests in line for a drawing slot:
// beyond it a request is answered 503 at once, so that a flood of them
// holds no more goroutines. A page of 30 cameras' pictures stays under it.
const maxWaiting = 64

// errBusy answers a picture request that found maxWaiting ahead of it.
var errBusy = errors.New("too many pictures being drawn; try again")

// drawingSlots is how many pictures are drawn at once: half the CPUs, 1
// to 4.
func drawingSlots() int { return min(max(runtime.GOMAXPROCS(0)/2, 1), 4) }

// New parses the templates.
func New(opts Options) (*Handler, error) {
	tmpl, err := template.New("").Funcs(template.FuncMap{
		"percent":  func(v float64) string { return decimals(100*v, 1) + "%" },
		"fixed":    decimals,
		"age":      age,
		"classes":  func(m map[string]int) []string { return slices.Sorted(maps.Keys(m)) },
		"features": func(m map[string]float64) []string { return slices.Sorted(maps.Keys(m)) },
		"frozen":   frozen,
	}).ParseFS(templates, "templates/*.html")
	if err != nil {
		return nil, err
	}
	return &Handler{opts: opts, tmpl: tmpl, pictures: cache{entries: map[string]cached{}},
		references: cache{entries: map[string]cached{}}, drawing: make(chan struct{}, drawingSlots())}, nil
}

// Register adds the pages to mux. Without snapshots the picture of the
// analyzed frame is not served at all.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /cameras", h.list)
	mux.HandleFunc("GET /cameras/{name}", h.camera)
	mux.HandleFunc("GET /cameras/{name}/reference.jpg", h.reference)
	if h.opts.Snapshots {
		mux.HandleFunc("GET /cameras/{name}/snapshot.jpg", h.snapshot)
	}
}

// lookup returns the camera the request names, or answers 404: a name is
// looked up among the configured cameras, never used to build a path.
func (h *Handler) lookup(w http.ResponseWriter, r *http.Request) (analysis.Look, bool) {
	look, ok := h.opts.Cameras.Look(r.PathValue("name"))
	if !ok {
		http.NotFound(w, r)
	}
	return look, ok
}

// page is what the templates are given.
type page struct {
	Cameras   []card
	Snapshots bool
	Now       time.Time
}

// card is one camera's card.
type card struct {
	analysis.Look
	State     cameraState
	Now       time.Time
	Snapshots bool
	Large     bool // the camera's own page
}

func (h *Handler) card(l analysis.Look, now time.Time) card {
	return card{Look: l, State: state(l), Now: now, Snapshots: h.opts.Snapshots}
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	looks := h.opts.Cameras.Looks()
	names := make(map[string]bool, len(looks))
	p := page{Snapshots: h.opts.Snapshots, Now: now}
	for _, l := range looks {
		names[l.Name] = true
		p.Cameras = append(p.Cameras, h.card(l, now))
	}
	h.pictures.forget(names)
	h.references.forget(names)
	h.execute(w, "cameras.html", p)
}

func (h *Handler) camera(w http.ResponseWriter, r *http.Request) {
	look, ok := h.lookup(w, r)
	if !ok {
		return
	}
	now := time.Now()
	c := h.card(look, now)
	c.Large = true
	h.execute(w, "camera.html", page{Cameras: []card{c}, Snapshots: h.opts.Snapshots, Now: now})
}

func (h *Handler) execute(w http.ResponseWriter, name string, p page) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// Pages of pictures of people: no caching by a shared proxy.
	w.Header().Set("Cache-Control", "private, no-cache")
	if err := h.tmpl.ExecuteTemplate(w, name, p); err != nil {
		h.opts.Logger.Error("Rendering page", "page", name, "err", err)
	}
}

// width reads the width parameter, default def: 400 outside its bounds.
func width(w http.ResponseWriter, r *http.Request, def int) (int, bool) {
	v := r.URL.Query().Get("width")
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < minWidth || n > maxWidth {
		http.Error(w, "width must be a number of pixels from "+strconv.Itoa(minWidth)+" to "+strconv.Itoa(maxWidth), http.StatusBadRequest)
		return 0, false
	}
	return n, true
}

func (h *Handler) snapshot(w http.ResponseWriter, r *http.Request) {
	h.servePicture(w, r, func(look analysis.Look, width int) ([]byte, string, error) {
		if look.Snapshot.Pix == nil {
			return nil, "no analyzed picture yet", nil
		}
		boxes := r.URL.Query().Get("boxes") != "0"
		key := cacheKey{seq: look.Seq, boxes: boxes, width: min(width, look.Snapshot.Width)}
		b, err := h.pictures.get(look.Name, key, func() ([]byte, error) {
			return h.draw(r.Context(), func() ([]byte, error) {
				return render(look.Snapshot, look.Detections, look.Stats.Width, look.Stats.Height, boxes, key.width)
			})
		})
		return b, "", err
	})
}

func (h *Handler) reference(w http.ResponseWriter, r *http.Request) {
	h.servePicture(w, r, func(look analysis.Look, width int) ([]byte, string, error) {
		if look.Reference == nil || !look.Reference.HasView() {
			return nil, "no reference view", nil
		}
		// The profile is replaced, never changed, when the reference is:
		// its address tells it, and the cache keeps it from being reused.
		key := cacheKey{reference: look.Reference, size: referenceSize(look.Reference, width)}
		b, err := h.references.get(look.Name, key, func() ([]byte, error) {
			return h.draw(r.Context(), func() ([]byte, error) {
				return encode(referenceImage(look.Reference, key.size))
			})
		})
		return b, "", err
	})
}

// servePicture answers the picture that picture makes of the camera the
// request names, at the requested width; without one, picture says why.
func (h *Handler) servePicture(w http.ResponseWriter, r *http.Request, picture func(look analysis.Look, width int) (jpeg []byte, missing string, err error)) {
	look, ok := h.lookup(w, r)
	if !ok {
		return
	}
	wd, ok := width(w, r, SnapshotWidth)
	if !ok {
		return
	}
	b, missing, err := picture(look, wd)
	switch {
	case errors.Is(err, errBusy) || err != nil && r.Context().Err() != nil:
		w.Header().Set("Retry-After", "1")
		http.Error(w, errBusy.Error(), http.StatusServiceUnavailable)
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	case b == nil:
		http.Error(w, missing, http.StatusNotFound)
	default:
		writeJPEG(w, b)
	}
}

// draw runs produce in a drawing slot, waiting in line for one while the
// request lasts, unless maxWaiting requests wait already.
func (h *Handler) draw(ctx context.Context, produce func() ([]byte, error)) ([]byte, error) {
	if h.waiting.Add(1) > maxWaiting {
		h.waiting.Add(-1)
		return nil, errBusy
	}
	select {
	case h.drawing <- struct{}{}:
		h.waiting.Add(-1)
	case <-ctx.Done():
		h.waiting.Add(-1)
		return nil, ctx.Err()
	}
	defer func() { <-h.drawing }()
	return produce()
}

func writeJPEG(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Cache-Control", "private, no-cache")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Write(b) //nolint:errcheck // the client went away
}

// decimals formats v with digits decimals, without the minus of a value that
// rounds to zero: a rotation of -0.0° reads as a rotation.
func decimals(v float64, digits int) string {
	s := strconv.FormatFloat(v, 'f', digits, 64)
	if strings.Trim(s, "-0.") == "" {
		return strings.TrimPrefix(s, "-")
	}
	return s
}

// age is how long ago t was, for people: "3s", "4m", "2h".
func age(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + "m"
	}
	return strconv.Itoa(int(d.Hours())) + "h"
}

// cameraState is the worst of a camera's current states, which its badge shows.
type cameraState string

// A camera's states, worst first. A stream that is down or stalled gives
// no picture to judge; an analysis that failed leaves figures that are not
// current; then the picture's states: a frozen picture explains a moved or
// obstructed view, as Alertmanager's inhibitions have it, and a view moved
// away finds less of the reference too.
const (
	stateDown            cameraState = "down"
	stateStalled         cameraState = "stalled"
	stateAnalysisFailing cameraState = "analysis failing"
	stateFrozen          cameraState = "frozen"
	stateMoved           cameraState = "moved"
	stateObstructed      cameraState = "obstructed"
	stateUp              cameraState = "up"
)

// Class is the state's CSS class.
func (s cameraState) Class() string { return strings.ReplaceAll(string(s), " ", "-") }

// AnalysisFailing tells the card to say why the latest analysis failed.
func (s cameraState) AnalysisFailing() bool { return s == stateAnalysisFailing }

// The thresholds of the shipped alerts (deploy/prometheus/rules), so that
// the badge and the alerts read the figures alike; the alerts also wait
// (for:) before they fire, the badge shows the latest analysis.
const (
	// CameraFrozen: a picture of no contrast, a covered lens or a
	// uniform night, changes too little to tell.
	frozenMinContrast = 0.02
	movedShift        = 0.05 // CameraMoved: of the picture's width or height
	movedZoom         = 0.1  // CameraMoved: the scale's distance from 1
	obstructedMatch   = 0.65 // CameraObstructed
)

// frozen tells whether l's picture reads frozen as CameraFrozen reads it.
func frozen(l analysis.Look) bool {
	return l.HasFrozen && l.Frozen && l.Stats.Contrast >= frozenMinContrast
}

// state is the worst of l's current states. An analysis fails when the
// latest attempt did, as camera_frame_analysis_success 0 says: a camera
// not analyzed yet, as one only probed through /probe or just added by a
// reload, has figures to wait for, not a failure.
func state(l analysis.Look) cameraState {
	switch {
	case l.Status.Connected && !l.Up:
		return stateStalled
	case !l.Up:
		return stateDown
	case !l.Failed.IsZero():
		return stateAnalysisFailing
	case frozen(l):
		return stateFrozen
	case l.HasView && (max(math.Abs(l.View.ShiftX), math.Abs(l.View.ShiftY)) > movedShift || math.Abs(l.View.Scale-1) > movedZoom):
		return stateMoved
	case l.HasView && l.View.MatchRatio < obstructedMatch:
		return stateObstructed
	}
	return stateUp
}
