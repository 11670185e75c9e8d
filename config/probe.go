package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"github.com/prometheus/common/config"
)

// Module is a set of camera settings that /probe applies to the cameras it
// is given as targets, as blackbox_exporter's modules are.
type Module struct {
	// AllowedTargets are the hosts the module may connect to: CIDRs
	// ("10.20.0.0/16"), addresses, or host name patterns ("*.cam.example"),
	// where * matches any characters and ? one. Anything else is refused before any
	// connection: an open /probe would let anyone who reaches the exporter
	// make it connect anywhere.
	AllowedTargets []string `yaml:"allowed_targets"`
	// ReferenceFileLimit bounds the references that probes learn and save
	// in the module's reference.dir, which a client naming ever new
	// cameras would otherwise fill. Built-in: 1000 with a reference.dir.
	ReferenceFileLimit int `yaml:"reference_file_limit,omitempty"`
	CameraOptions      `yaml:",inline"`

	prefixes []netip.Prefix // of AllowedTargets
	hosts    []string       // the name patterns of AllowedTargets, lower case
}

// Auth is a credentials block, named by /probe's auth parameter, so that no
// credential travels in a URL, a label or a Prometheus configuration.
type Auth struct {
	// Modules are the modules whose probes may send these credentials,
	// and so the hosts they may go to: those modules' allowed_targets.
	Modules  []string      `yaml:"modules"`
	Username string        `yaml:"username"`
	Password config.Secret `yaml:"password,omitempty"`
	// PasswordFile holds the password, as a camera's does.
	PasswordFile string `yaml:"password_file,omitempty"`

	filePassword string
}

// hostPattern is what a host name pattern of allowed_targets may hold.
var hostPattern = regexp.MustCompile(`^[a-z0-9*?.-]+$`)

// ErrTargetNotAllowed is wrapped by ProbeCamera's error for a target
// outside the module's allowed_targets.
var ErrTargetNotAllowed = errors.New("not in the module's allowed_targets")

// defaultReferenceFileLimit is a module's reference_file_limit when unset.
const defaultReferenceFileLimit = 1000

// maxProbeCameraName bounds camera=, which names a reference file: with the
// target's hash and ".json" it stays far below file systems' 255 bytes.
const maxProbeCameraName = 128

func (m *Module) resolve(r *reporter, dir string, defaults CameraOptions, cameraDirs []referenceDir) {
	if len(m.AllowedTargets) == 0 {
		r.errorf("", "missing allowed_targets: the hosts the module may probe, as CIDRs or host name patterns")
	}
	for _, t := range m.AllowedTargets {
		if p, err := netip.ParsePrefix(t); err == nil {
			m.prefixes = append(m.prefixes, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(t); err == nil {
			m.prefixes = append(m.prefixes, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		host := strings.ToLower(t)
		if !hostPattern.MatchString(host) {
			r.errorf("allowed_targets", "allowed_targets %q: not a CIDR, an address or a host name pattern (letters, digits, '.', '-', '*' and '?')", t)
			continue
		}
		m.hosts = append(m.hosts, host)
	}
	m.check(r)
	m.Reference.resolve(dir)
	// A module's references are its probes' alone: the defaults' directory
	// and calibration are the configured cameras', whose files a probe
	// must never write or replace.
	own := m.Reference
	m.fill(defaults)
	m.Reference.Dir, m.Reference.Calibration = own.Dir, own.Calibration
	m.Reference.checkFilled(r)
	if m.Reference.Dir != "" {
		m.checkOwnReferenceDir(r, cameraDirs)
	}
	switch {
	case m.ReferenceFileLimit < 0:
		r.errorf("reference_file_limit", "reference_file_limit %d: must be positive (0 or unset: %d)", m.ReferenceFileLimit, defaultReferenceFileLimit)
	case m.ReferenceFileLimit > 0 && m.Reference.Dir == "":
		r.errorf("reference_file_limit", "reference_file_limit needs reference.dir, where the probes' references are saved")
	case m.ReferenceFileLimit == 0 && m.Reference.Dir != "":
		m.ReferenceFileLimit = defaultReferenceFileLimit
	}
}

// checkOwnReferenceDir refuses a reference.dir that is a configured
// camera's: the same path, or, for directories that exist, the same
// directory by another path, as a symbolic link or a bind mount.
func (m *Module) checkOwnReferenceDir(r *reporter, cameraDirs []referenceDir) {
	dir := filepath.Clean(m.Reference.Dir)
	done := r.progress.reading("a reference directory", dir)
	fi, err := os.Stat(dir)
	done()
	for _, c := range cameraDirs {
		shared := c.path == dir
		if !shared && err == nil {
			done := r.progress.reading("a reference directory", c.path)
			cfi, cerr := os.Stat(c.path)
			done()
			shared = cerr == nil && os.SameFile(fi, cfi)
		}
		switch {
		case !shared:
		case c.path == dir:
			r.errorf("reference", "reference.dir %s is also the reference directory of %s: probes and configured cameras must not share reference files", m.Reference.Dir, c.owner)
		default:
			r.errorf("reference", "reference.dir %s is the directory %s, the reference directory of %s: probes and configured cameras must not share reference files", m.Reference.Dir, c.path, c.owner)
		}
	}
}

// Allows reports whether the module may connect to host, an address or a
// name as in a URL. Names are matched as they are, not resolved: a name's
// pattern trusts the DNS for where it leads.
func (m Module) Allows(host string) bool {
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		a = a.Unmap()
		for _, p := range m.prefixes {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, pattern := range m.hosts {
		// A name cannot hold '/', so that path.Match's * matches any characters.
		if ok, _ := path.Match(pattern, host); ok {
			return true
		}
	}
	return false
}

func (a *Auth) resolve(r *reporter, dir string, modules map[string]Module) {
	// Without modules the block fails to load rather than going to any
	// module's hosts: a configuration from before modules were required
	// must not send its credentials where it did not mean them to go.
	if len(a.Modules) == 0 {
		r.errorf("modules", "missing modules: the modules whose probes may send these credentials")
	}
	for _, m := range a.Modules {
		if _, ok := modules[m]; !ok {
			r.errorf("modules", "modules: unknown module %q", m)
		}
	}
	if a.Username == "" {
		r.errorf("", "missing username")
	}
	c := Camera{Username: a.Username, Password: a.Password, PasswordFile: a.PasswordFile}
	if c.Password != "" && c.PasswordFile != "" {
		r.errorf("password_file", "password and password_file are mutually exclusive")
	}
	c.readPasswordFile(r, dir)
	a.PasswordFile, a.filePassword = c.PasswordFile, c.filePassword
}

// ProbeCamera returns the camera a probe of target watches: the configured
// camera of that name (configured is true), or the stream at target, an
// RTSP URL without user information ("rtsp://" may be left out), with
// module's settings and auth's credentials, if auth lists module. name, if
// not empty, is the camera label, which must not be a configured camera's;
// by default the label is the target. A module with a reference.dir keeps
// the probed camera's reference there as <name>.<hash of module and
// target>.json, which no configured camera's file can be. An error means a
// bad request, and nothing was connected to.
func (cfg *Config) ProbeCamera(target, module, auth, name string) (cam Camera, configured bool, err error) {
	if target == "" {
		return Camera{}, false, errors.New("target parameter is missing")
	}
	for _, c := range cfg.Cameras {
		if c.Name == target {
			if auth != "" || name != "" {
				return Camera{}, false, fmt.Errorf("target %q is a configured camera, with its own credentials and name: auth and camera parameters do not apply", target)
			}
			return c, true, nil
		}
	}
	cam, err = cfg.moduleCamera(target, module, auth, name)
	return cam, false, err
}

func (cfg *Config) moduleCamera(target, module, auth, name string) (Camera, error) {
	m, ok := cfg.Modules[module]
	if !ok {
		return Camera{}, fmt.Errorf("unknown module %q", module)
	}
	u, err := targetURL(target)
	if err != nil {
		return Camera{}, err
	}
	if !m.Allows(u.Hostname()) {
		return Camera{}, fmt.Errorf("target host %q: %w %q", u.Hostname(), ErrTargetNotAllowed, module)
	}
	c := Camera{Name: name, URL: u.String(), CameraOptions: m.CameraOptions}
	switch {
	case name == "":
		if m.Reference.Dir != "" {
			return Camera{}, fmt.Errorf("module %q has a reference.dir: name the camera, whose reference file it is, with the camera parameter", module)
		}
		c.Name = target
	case len(name) > maxProbeCameraName:
		return Camera{}, fmt.Errorf("camera: at most %d characters", maxProbeCameraName)
	case !validName.MatchString(name):
		return Camera{}, fmt.Errorf("camera %q: must match %s", name, validName)
	case slices.ContainsFunc(cfg.Cameras, func(configured Camera) bool { return configured.Name == name }):
		return Camera{}, fmt.Errorf("camera %q is a configured camera: probe it with target=%[1]s alone, or give this one another name", name)
	}
	if auth != "" {
		a, ok := cfg.Auths[auth]
		if !ok {
			return Camera{}, fmt.Errorf("unknown auth %q", auth)
		}
		if !slices.Contains(a.Modules, module) {
			return Camera{}, fmt.Errorf("auth %q is not for module %q: the auth block's modules do not list it", auth, module)
		}
		c.Username, c.Password, c.PasswordFile, c.filePassword = a.Username, a.Password, a.PasswordFile, a.filePassword
	}
	if c.Reference.Dir != "" {
		c.referenceName = name + "." + targetHash(module, c.URL)
	}
	return c, nil
}

// targetHash tells apart the references of the targets a module probes
// under one camera name, so that a probe of another stream never reads or
// writes a camera's reference.
func targetHash(module, streamURL string) string {
	sum := sha256.Sum256([]byte(module + "\x00" + streamURL))
	return hex.EncodeToString(sum[:8])
}

// probeReferenceFile is the name of a reference file that a probe saves.
var probeReferenceFile = regexp.MustCompile(`^[a-zA-Z0-9_-]+\.[0-9a-f]{16}\.json$`)

// IsProbeReference reports whether name, a file name in a module's
// reference.dir, is a probed camera's reference.
func IsProbeReference(name string) bool { return probeReferenceFile.MatchString(name) }

// targetURL parses a probe's target.
func targetURL(target string) (*url.URL, error) {
	if strings.IndexFunc(target, unicode.IsControl) >= 0 {
		return nil, errors.New("target: control characters")
	}
	if !strings.Contains(target, "://") {
		target = "rtsp://" + target
	}
	u, err := url.Parse(target)
	switch {
	case err != nil:
		return nil, fmt.Errorf("target: not a valid URL")
	case u.User != nil:
		// Not echoed: it holds a credential.
		return nil, errors.New("target: must not hold credentials; name a block of the configuration's auths with the auth parameter")
	case u.Scheme != "rtsp" && u.Scheme != "rtsps":
		return nil, fmt.Errorf("target %q: scheme must be rtsp or rtsps", target)
	case u.Hostname() == "" || u.Opaque != "":
		return nil, fmt.Errorf("target %q: missing host", target)
	case u.Fragment != "":
		return nil, fmt.Errorf("target %q: must not have a fragment", target)
	}
	return u, nil
}
