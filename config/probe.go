package config

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"path"
	"regexp"
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
	CameraOptions  `yaml:",inline"`

	prefixes []netip.Prefix // of AllowedTargets
	hosts    []string       // the name patterns of AllowedTargets, lower case
}

// Auth is a credentials block, named by /probe's auth parameter, so that no
// credential travels in a URL, a label or a Prometheus configuration.
type Auth struct {
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

func (m *Module) resolve(r *reporter, dir string, defaults CameraOptions) {
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
	m.fill(defaults)
	m.Reference.checkFilled(r)
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

func (a *Auth) resolve(r *reporter, dir string) {
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
// module's settings and auth's credentials. name, if not empty, is the
// camera label and the name of its reference file; by default the label is
// the target. An error means a bad request, and nothing was connected to.
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
	case !validName.MatchString(name):
		return Camera{}, fmt.Errorf("camera %q: must match %s", name, validName)
	}
	if auth != "" {
		a, ok := cfg.Auths[auth]
		if !ok {
			return Camera{}, fmt.Errorf("unknown auth %q", auth)
		}
		c.Username, c.Password, c.PasswordFile, c.filePassword = a.Username, a.Password, a.PasswordFile, a.filePassword
	}
	return c, nil
}

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
