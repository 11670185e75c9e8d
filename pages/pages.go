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
	"embed"
	"html/template"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/camera-exporter/camera_exporter/collector"
)

//go:embed templates/*.html
var templates embed.FS

// Cameras gives the pages what they show; *collector.CameraCollector
// implements it.
type Cameras interface {
	Looks() []collector.Look
	Look(name string) (collector.Look, bool)
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
}

// New parses the templates.
func New(opts Options) (*Handler, error) {
	tmpl, err := template.New("").Funcs(template.FuncMap{
		"percent":  func(v float64) string { return decimals(100*v, 1) + "%" },
		"fixed":    decimals,
		"age":      age,
		"classes":  func(m map[string]int) []string { return slices.Sorted(maps.Keys(m)) },
		"features": func(m map[string]float64) []string { return slices.Sorted(maps.Keys(m)) },
		"state":    state,
	}).ParseFS(templates, "templates/*.html")
	if err != nil {
		return nil, err
	}
	return &Handler{opts: opts, tmpl: tmpl, pictures: cache{entries: map[string]cached{}}}, nil
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
func (h *Handler) lookup(w http.ResponseWriter, r *http.Request) (collector.Look, bool) {
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
	collector.Look
	Now       time.Time
	Snapshots bool
	Large     bool // the camera's own page
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	looks := h.opts.Cameras.Looks()
	names := make(map[string]bool, len(looks))
	p := page{Snapshots: h.opts.Snapshots, Now: now}
	for _, l := range looks {
		names[l.Name] = true
		p.Cameras = append(p.Cameras, card{Look: l, Now: now, Snapshots: h.opts.Snapshots})
	}
	h.pictures.forget(names)
	h.execute(w, "cameras.html", p)
}

func (h *Handler) camera(w http.ResponseWriter, r *http.Request) {
	look, ok := h.lookup(w, r)
	if !ok {
		return
	}
	now := time.Now()
	h.execute(w, "camera.html", page{Cameras: []card{{Look: look, Now: now, Snapshots: h.opts.Snapshots, Large: true}}, Snapshots: h.opts.Snapshots, Now: now})
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
	h.servePicture(w, r, func(look collector.Look, width int) ([]byte, string, error) {
		if look.Snapshot.Pix == nil {
			return nil, "no analyzed picture yet", nil
		}
		boxes := r.URL.Query().Get("boxes") != "0"
		key := cacheKey{seq: look.Seq, boxes: boxes, width: min(width, look.Snapshot.Width)}
		b, err := h.pictures.get(look.Name, key, func() ([]byte, error) {
			return render(look.Snapshot, look.Detections, look.Stats.Width, look.Stats.Height, boxes, key.width)
		})
		return b, "", err
	})
}

func (h *Handler) reference(w http.ResponseWriter, r *http.Request) {
	h.servePicture(w, r, func(look collector.Look, width int) ([]byte, string, error) {
		if look.Reference == nil || !look.Reference.HasView() {
			return nil, "no reference view", nil
		}
		b, err := encode(referenceImage(look.Reference, width))
		return b, "", err
	})
}

// servePicture answers the picture that picture makes of the camera the
// request names, at the requested width; without one, picture says why.
func (h *Handler) servePicture(w http.ResponseWriter, r *http.Request, picture func(look collector.Look, width int) (jpeg []byte, missing string, err error)) {
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
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	case b == nil:
		http.Error(w, missing, http.StatusNotFound)
	default:
		writeJPEG(w, b)
	}
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

// state is a camera's state, as the alerts see it: up, stalled (session
// up, no video) or down.
func state(l collector.Look) string {
	switch {
	case l.Up:
		return "up"
	case l.Status.Connected:
		return "stalled"
	}
	return "down"
}
