package config

import (
	"net/url"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// secretToken stands in for credentials in what is displayed.
const secretToken = "<secret>"

// Credentials returns the user name and password to authenticate with: those
// of the username, password and password_file fields if any is set, else
// those in the URL.
func (c Camera) Credentials() (user, pass string) {
	if c.hasCredentialFields() {
		if c.Password != "" {
			return c.Username, string(c.Password)
		}
		return c.Username, c.filePassword
	}
	u, ok := c.parseURL()
	if !ok || u.User == nil {
		return "", ""
	}
	pass, _ = u.User.Password()
	return u.User.Username(), pass
}

// StreamURL returns the URL to dial: the URL without credentials, which
// travel separately. It is empty for a URL that Load rejects as unparsable.
func (c Camera) StreamURL() string {
	u, ok := c.parseURL()
	if !ok {
		return ""
	}
	u.User = nil
	return u.String()
}

// RedactedURL returns the URL with its credentials, if any, replaced by
// <secret>, for display. A URL that Load rejects as unparsable is replaced
// as a whole.
func (c Camera) RedactedURL() string {
	u, ok := c.parseURL()
	if !ok {
		return secretToken
	}
	if u.User == nil {
		return u.String()
	}
	u.User = nil
	// Spliced in, as url.UserPassword would percent-encode the token.
	scheme, rest, _ := strings.Cut(u.String(), "//")
	return scheme + "//" + secretToken + "@" + rest
}

// Equal reports whether c and o have the same resolved settings, credentials
// included, so that a reload can keep the camera's session.
func (c Camera) Equal(o Camera) bool {
	cUser, cPass := c.Credentials()
	oUser, oPass := o.Credentials()
	return c.Name == o.Name &&
		c.StreamURL() == o.StreamURL() &&
		cUser == oUser && cPass == oPass &&
		c.Transport == o.Transport &&
		c.Auth == o.Auth &&
		c.Timeout == o.Timeout &&
		equalFloats(c.DarkThreshold, o.DarkThreshold) &&
		c.Decode == o.Decode &&
		c.MaxPicturePixels == o.MaxPicturePixels &&
		c.Detect.equal(o.Detect) &&
		c.Reference == o.Reference &&
		slices.Equal(c.FrozenOverlay, o.FrozenOverlay) &&
		c.referenceName == o.referenceName
}

func equalFloats(a, b *float64) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// Redacted returns the effective configuration, defaults filled in, as YAML
// with all credentials replaced by <secret>, for display.
func (c *Config) Redacted() ([]byte, error) {
	redacted := *c
	redacted.Cameras = make([]Camera, len(c.Cameras))
	for i, cam := range c.Cameras {
		cam.URL = cam.RedactedURL()
		// config.Secret redacts itself, but not if config.MarshalSecretValue
		// is set, as a program linking this package may do.
		if cam.Password != "" {
			cam.Password = secretToken
		}
		redacted.Cameras[i] = cam
	}
	if c.Auths != nil {
		redacted.Auths = make(map[string]Auth, len(c.Auths))
		for name, a := range c.Auths {
			if a.Password != "" {
				a.Password = secretToken
			}
			redacted.Auths[name] = a
		}
	}
	return yaml.Marshal(&redacted)
}

// parseURL parses c.URL. It fails for opaque URLs too, like "user:pass@host",
// where the credentials cannot be told apart from the rest.
func (c Camera) parseURL() (*url.URL, bool) {
	u, err := url.Parse(c.URL)
	if err != nil || u.Opaque != "" {
		return nil, false
	}
	return u, true
}

// hasCredentialFields reports whether c has credentials outside its URL.
func (c Camera) hasCredentialFields() bool {
	return c.Username != "" || c.Password != "" || c.PasswordFile != ""
}
