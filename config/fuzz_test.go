package config

import (
	"bytes"
	"net/url"
	"os"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzParse parses arbitrary YAML: errors are fine, panics are not, and
// the effective configuration of one that parses holds no password.
func FuzzParse(f *testing.F) {
	for _, path := range []string{"../exporter.yml", "testdata/full.yml", "testdata/reference.yml"} {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("cameras:\n  - name: a\n    url: rtsp://user:p%40ss@10.0.0.1/s\n"))
	f.Add([]byte("defaults:\n  timeout: 1m\n  auth: digest\ncameras:\n  - name: b\n    url: rtsps://h/b\n    username: u\n    password: pw\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := Parse(b)
		if err != nil {
			return
		}
		out, err := cfg.Redacted()
		if err != nil {
			t.Fatalf("Redacted: %v", err)
		}
		// What Redacted shows must not depend on the passwords: a
		// password equal to a camera name or a default may appear as that.
		other := *cfg
		other.Cameras = make([]Camera, len(cfg.Cameras))
		for i, c := range cfg.Cameras {
			if c.Password != "" {
				c.Password += "x"
			}
			c.filePassword += "x"
			other.Cameras[i] = c
		}
		if again, err := other.Redacted(); err != nil || !bytes.Equal(again, out) {
			t.Fatalf("Redacted depends on the passwords:\n%s\n%s", out, again)
		}
		var shown struct {
			Cameras []struct {
				URL      string `yaml:"url"`
				Password string `yaml:"password"`
			} `yaml:"cameras"`
		}
		if err := yaml.Unmarshal(out, &shown); err != nil {
			t.Fatalf("Redacted is no YAML: %v\n%s", err, out)
		}
		for _, c := range shown.Cameras {
			if c.Password != "" && c.Password != secretToken {
				t.Fatalf("password %q shown", c.Password)
			}
			if u, err := url.Parse(c.URL); err == nil && u.User != nil {
				if _, ok := u.User.Password(); ok || u.User.Username() != secretToken {
					t.Fatalf("URL %q shows its credentials", c.URL)
				}
			}
		}
	})
}
