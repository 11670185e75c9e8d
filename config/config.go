package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/camera-exporter/camera_exporter/internal/boundedfile"
)

// Values of CameraOptions.Transport: the RTSP lower transport.
const (
	TransportTCP  = "tcp"
	TransportUDP  = "udp"
	TransportAuto = "auto"
)

// Values of CameraOptions.Decode.
const (
	// DecodeKeyframe decodes only the latest key frame, when it is scraped.
	DecodeKeyframe = "keyframe"
	// DecodeAll decodes every frame.
	DecodeAll = "all"
)

// Values of CameraOptions.Auth.
const (
	// AuthAny sends the password in whichever scheme the camera asks for,
	// Digest when it offers both.
	AuthAny = "any"
	// AuthDigest never sends Basic, whose password a server posing as the
	// camera would read.
	AuthDigest = "digest"
)

var (
	transports  = []string{TransportTCP, TransportUDP, TransportAuto}
	authModes   = []string{AuthAny, AuthDigest}
	decodeModes = []string{DecodeKeyframe, DecodeAll}
	validName   = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
)

// MaxPicturePixelsCeiling bounds max_picture_pixels, and the decoder
// refuses larger pictures whatever a camera's limit: it covers 8K cameras
// (7680x4320, 33.2 MP), the largest made, while a picture of 16384x16384,
// the largest side an SPS may give, would take 400 MB a frame.
const MaxPicturePixelsCeiling = 40_000_000

// builtinDefaults returns the options of cameras that neither set them nor
// get them from the defaults block.
func builtinDefaults() CameraOptions {
	darkThreshold := 0.15
	detect := true
	return CameraOptions{
		Transport:     TransportTCP,
		Auth:          AuthAny,
		Timeout:       model.Duration(10 * time.Second),
		DarkThreshold: &darkThreshold,
		Decode:        DecodeKeyframe,
		// 12 MP: 4K (3840x2160, 4096x2160), 8 MP and 12 MP fisheye
		// (4000x3000) cameras.
		MaxPicturePixels: 12_000_000,
		Detect:           DetectOptions{Enabled: &detect},
		Reference:        ReferenceOptions{Window: model.Duration(time.Hour)},
	}
}

// Config is the content of the configuration file.
type Config struct {
	// Detector is nil when no detector is configured.
	Detector *Detector     `yaml:"detector,omitempty"`
	Defaults CameraOptions `yaml:"defaults,omitempty"`
	Cameras  []Camera      `yaml:"cameras"`
	// Modules and Auths are for /probe: camera settings, and credentials,
	// by name.
	Modules map[string]Module `yaml:"modules,omitempty"`
	Auths   map[string]Auth   `yaml:"auths,omitempty"`
}

// CameraOptions are the camera settings that the defaults block can provide.
type CameraOptions struct {
	// Transport is TransportTCP, TransportUDP or TransportAuto.
	Transport string `yaml:"transport,omitempty"`
	// Auth is AuthAny or AuthDigest: the authentication schemes the
	// password may be sent with.
	Auth string `yaml:"auth,omitempty"`
	// Timeout is the RTSP read timeout, the maximum age of the latest frame
	// of a camera that is up, and the cut-off for analysing a camera.
	Timeout model.Duration `yaml:"timeout,omitempty"`
	// DarkThreshold is the full-range luma, in [0,1], below which a pixel
	// is dark.
	DarkThreshold *float64 `yaml:"dark_threshold,omitempty"`
	// Decode is DecodeKeyframe or DecodeAll.
	Decode string `yaml:"decode,omitempty"`
	// MaxPicturePixels is the largest picture, width times height, the
	// camera may announce; a larger one ends its session before anything
	// is allocated for it.
	MaxPicturePixels int64 `yaml:"max_picture_pixels,omitempty"`
	// Detect applies when a detector is configured.
	Detect DetectOptions `yaml:"detect,omitempty"`
	// Reference is where the camera's reference profile is and how it is
	// learned, for the drift scores.
	Reference ReferenceOptions `yaml:"reference,omitempty"`
	// FrozenOverlay names the regions, besides the picture's top and
	// bottom fifth, where the camera draws an overlay (a clock, a logo
	// that blinks) for the frozen-picture check to learn.
	FrozenOverlay []Region `yaml:"frozen_overlay,omitempty"`
}

// Region is a rectangle of a picture, its sides as fractions of the
// picture's width and height from its top left corner.
type Region struct {
	Left   float64 `yaml:"left"`
	Top    float64 `yaml:"top"`
	Right  float64 `yaml:"right"`
	Bottom float64 `yaml:"bottom"`
}

// Camera is an RTSP camera to monitor.
type Camera struct {
	// Name becomes the camera label.
	Name string `yaml:"name"`
	// URL is the stream to play. It may hold credentials, unless Username,
	// Password or PasswordFile are set.
	URL      string        `yaml:"url"`
	Username string        `yaml:"username,omitempty"`
	Password config.Secret `yaml:"password,omitempty"`
	// PasswordFile holds the password. Load makes a relative path relative
	// to the directory of the configuration file.
	PasswordFile  string `yaml:"password_file,omitempty"`
	CameraOptions `yaml:",inline"`

	filePassword string // content of PasswordFile
	// referenceName names the reference file of a probed camera, which a
	// configured camera's name can never be; empty: the camera's name.
	referenceName string
}

// Load reads the configuration file at path, fills in defaults, reads
// password files and the detector's labels, and validates the result.
func Load(path string) (*Config, error) {
	return load(path, nil)
}

// load is Load recording in progress the file it reads.
func load(path string, progress *loadProgress) (*Config, error) {
	done := progress.reading(configFile.What, path)
	b, err := boundedfile.Read(path, configFile)
	done()
	if err != nil {
		return nil, err
	}
	return parse(b, source(path), filepath.Dir(path), progress)
}

// Parse is Load for a configuration in memory. Relative paths are relative
// to the working directory.
func Parse(b []byte) (*Config, error) {
	return parse(b, "", "", nil)
}

func parse(b []byte, src source, dir string, progress *loadProgress) (*Config, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, src.yamlError(err)
	}
	l := layoutOf(&doc)
	if err := checkTimeouts(src, l); err != nil {
		return nil, err
	}
	cfg := &Config{}
	if err := decodeStrict(b, cfg); err != nil {
		return nil, src.yamlError(err)
	}
	if err := cfg.resolve(src, dir, l, progress); err != nil {
		return nil, err
	}
	return cfg, nil
}

// decodeStrict decodes b into cfg, rejecting unknown fields.
func decodeStrict(b []byte, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	// io.EOF means an empty file, which is an exporter without cameras.
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// resolve validates cfg, reads password files and fills in defaults. It
// returns all validation errors, so that they can be fixed in one go.
func (cfg *Config) resolve(src source, dir string, l layout, progress *loadProgress) error {
	var errs []error
	if cfg.Detector != nil {
		r := &reporter{src: src, pos: positionOf(l.detector), subject: "detector", progress: progress}
		cfg.Detector.resolve(r, dir)
		errs = append(errs, r.errs...)
	}

	defaults := &reporter{src: src, pos: positionOf(l.defaults), subject: "defaults", progress: progress}
	cfg.Defaults.check(defaults)
	cfg.Defaults.Reference.resolve(dir)
	cfg.Defaults.Detect.checkClasses(defaults, cfg.Detector)
	cfg.Defaults.fill(builtinDefaults())
	errs = append(errs, defaults.errs...)

	nameLines := make(map[string]int) // line of the first camera with each name
	for i := range cfg.Cameras {
		c := &cfg.Cameras[i]
		r := &reporter{src: src, pos: l.camera(i), subject: c.subject(i), progress: progress}
		c.check(r)
		if first, ok := nameLines[c.Name]; ok {
			r.errorf("name", "name already used at line %d", first)
		} else if c.Name != "" {
			nameLines[c.Name] = r.lineOf("name")
		}
		c.readPasswordFile(r, dir)
		c.Reference.resolve(dir)
		c.Detect.checkClasses(r, cfg.Detector)
		c.CameraOptions.fill(cfg.Defaults)
		c.Reference.checkFilled(r)
		c.checkReferenceFile(r)
		errs = append(errs, r.errs...)
	}
	cameraDirs := cfg.referenceDirs()
	errs = append(errs, resolveNamed(src, progress, "module", cfg.Modules, l.modules, func(m *Module, r *reporter) {
		m.resolve(r, dir, cfg.Defaults, cameraDirs)
		m.Detect.checkClasses(r, cfg.Detector)
	})...)
	errs = append(errs, resolveNamed(src, progress, "auth", cfg.Auths, l.auths, func(a *Auth, r *reporter) {
		a.resolve(r, dir, cfg.Modules)
	})...)
	return errors.Join(errs...)
}

// referenceDir is a configured camera's reference directory, for the
// modules to keep off it.
type referenceDir struct {
	path  string // cleaned
	owner string // "the defaults" or `camera "gate"`
}

// referenceDirs returns the configured cameras' reference directories,
// each with who uses it first.
func (cfg *Config) referenceDirs() []referenceDir {
	var dirs []referenceDir
	add := func(dir, owner string) {
		dir = filepath.Clean(dir)
		if !slices.ContainsFunc(dirs, func(d referenceDir) bool { return d.path == dir }) {
			dirs = append(dirs, referenceDir{dir, owner})
		}
	}
	if cfg.Defaults.Reference.Dir != "" {
		add(cfg.Defaults.Reference.Dir, "the defaults")
	}
	for _, c := range cfg.Cameras {
		if c.Reference.Dir != "" {
			add(c.Reference.Dir, fmt.Sprintf("camera %q", c.Name))
		}
	}
	return dirs
}

// resolveNamed resolves the entries of a map of the file by name, in the
// order of their names, each reported at its position, and returns the
// errors.
func resolveNamed[T any](src source, progress *loadProgress, kind string, entries map[string]T, positions map[string]position, resolve func(*T, *reporter)) []error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(entries)) {
		e := entries[name]
		r := &reporter{src: src, pos: positions[name], subject: fmt.Sprintf("%s %q", kind, name), progress: progress}
		if !validName.MatchString(name) {
			r.errorf("", "name %q: must match %s", name, validName)
		}
		resolve(&e, r)
		entries[name] = e
		errs = append(errs, r.errs...)
	}
	return errs
}

// check validates the options that o sets.
func (o CameraOptions) check(r *reporter) {
	if o.Transport != "" && !slices.Contains(transports, o.Transport) {
		r.errorf("transport", "transport %q: must be one of %s", o.Transport, strings.Join(transports, ", "))
	}
	if o.Auth != "" && !slices.Contains(authModes, o.Auth) {
		r.errorf("auth", "auth %q: must be one of %s", o.Auth, strings.Join(authModes, ", "))
	}
	// Decoding cannot tell "timeout: 0s" from no timeout, the YAML can.
	if r.has("timeout") && o.Timeout <= 0 {
		r.errorf("timeout", "timeout %s: must be greater than 0", o.Timeout)
	}
	// Negated so that NaN is rejected too.
	if t := o.DarkThreshold; t != nil && !(*t >= 0 && *t <= 1) {
		r.errorf("dark_threshold", "dark_threshold %v: must be between 0 and 1", *t)
	}
	if o.Decode != "" && !slices.Contains(decodeModes, o.Decode) {
		r.errorf("decode", "decode %q: must be one of %s", o.Decode, strings.Join(decodeModes, ", "))
	}
	if r.has("max_picture_pixels") && (o.MaxPicturePixels <= 0 || o.MaxPicturePixels > MaxPicturePixelsCeiling) {
		r.errorf("max_picture_pixels", "max_picture_pixels %d: must be between 1 and %d", o.MaxPicturePixels, MaxPicturePixelsCeiling)
	}
	for i, g := range o.FrozenOverlay {
		// Negated so that NaN is rejected too.
		if !(0 <= g.Left && g.Left < g.Right && g.Right <= 1 && 0 <= g.Top && g.Top < g.Bottom && g.Bottom <= 1) {
			r.errorf("frozen_overlay", "frozen_overlay[%d] left %v, top %v, right %v, bottom %v: must be fractions of the picture, 0 <= left < right <= 1 and 0 <= top < bottom <= 1",
				i, g.Left, g.Top, g.Right, g.Bottom)
		}
	}
	o.Detect.check(r)
}

// fill sets the options that o leaves unset to those of d, which sets all.
func (o *CameraOptions) fill(d CameraOptions) {
	if o.Transport == "" {
		o.Transport = d.Transport
	}
	if o.Auth == "" {
		o.Auth = d.Auth
	}
	if o.Timeout == 0 {
		o.Timeout = d.Timeout
	}
	if o.DarkThreshold == nil {
		// A copy, so that changing one camera's does not change another's.
		t := *d.DarkThreshold
		o.DarkThreshold = &t
	}
	if o.Decode == "" {
		o.Decode = d.Decode
	}
	if o.MaxPicturePixels == 0 {
		o.MaxPicturePixels = d.MaxPicturePixels
	}
	if o.FrozenOverlay == nil {
		o.FrozenOverlay = slices.Clone(d.FrozenOverlay)
	}
	o.Detect.fill(d.Detect)
	o.Reference.fill(d.Reference)
}

// subject names c in errors; i is its index, for when it has no name.
func (c Camera) subject(i int) string {
	if c.Name == "" {
		return fmt.Sprintf("camera #%d", i+1)
	}
	return fmt.Sprintf("camera %q", c.Name)
}

// check validates c, except for the uniqueness of its name.
func (c Camera) check(r *reporter) {
	switch {
	case c.Name == "":
		r.errorf("", "missing name")
	case !validName.MatchString(c.Name):
		r.errorf("name", "name %q: must match %s", c.Name, validName)
	}
	c.checkURL(r)
	if c.Password != "" && c.PasswordFile != "" {
		r.errorf("password_file", "password and password_file are mutually exclusive")
	}
	c.CameraOptions.check(r)
}

func (c Camera) checkURL(r *reporter) {
	if c.URL == "" {
		r.errorf("", "missing url")
		return
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		// Not err: it quotes the URL, or part of it, password included.
		r.errorf("url", "url: not a valid URL; special characters in the user name or password must be percent-encoded")
		return
	}
	if u.Scheme != "rtsp" && u.Scheme != "rtsps" {
		// Not the scheme either: in "user:pass@host" it is the user name.
		r.errorf("url", "url: scheme must be rtsp or rtsps")
	}
	if u.Hostname() == "" {
		r.errorf("url", "url: missing host")
	}
	if u.User != nil && c.hasCredentialFields() {
		r.errorf("url", "url: has credentials, and so must not be combined with username, password or password_file")
	}
}

// readPasswordFile reads c's password file, if it has one.
func (c *Camera) readPasswordFile(r *reporter, dir string) {
	// With a password as well, check has reported the conflict.
	if c.PasswordFile == "" || c.Password != "" {
		return
	}
	if !filepath.IsAbs(c.PasswordFile) {
		c.PasswordFile = filepath.Join(dir, c.PasswordFile)
	}
	b, err := r.readFile(c.PasswordFile, passwordFile)
	if err != nil {
		// The error names the file, and has none of its content.
		r.errorf("password_file", "password_file: %v", err)
		return
	}
	c.filePassword = strings.TrimRightFunc(string(b), unicode.IsSpace)
}
