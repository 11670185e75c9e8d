package camera

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"

	"github.com/camera-exporter/camera_exporter/config"
)

var errBasicRefused = errors.New("camera offers only Basic authentication, which auth: digest refuses: the password was not sent")

// authHooks apply the camera's auth option to what gortsplib sends, and
// add qop="auth" to its Digest responses: gortsplib computes them without
// (RFC 2069), which cameras that require qop (Dahua) reject as a wrong
// password. Its methods are gortsplib hooks, which it calls on the
// client's goroutine, one at a time.
type authHooks struct {
	user, pass string
	digestOnly bool
	warnBasic  func()              // Basic goes over plain RTSP
	challenges []map[string]string // the Digest challenges of the latest 401
	nc         uint32              // requests answering them
	refused    error
}

func (s *session) newAuthHooks(user, pass string) *authHooks {
	return &authHooks{
		user:       user,
		pass:       pass,
		digestOnly: s.cfg.Auth == config.AuthDigest,
		warnBasic: func() {
			// Once per stream: every reconnect sends it again.
			if s.basicWarned.CompareAndSwap(false, true) {
				s.logger.Warn("Camera accepts only Basic authentication over plain RTSP: the password travels in clear; auth: digest refuses to send it")
			}
		},
	}
}

// onResponse keeps the Digest challenges of an unauthorized response.
func (a *authHooks) onResponse(res *base.Response) {
	if res.StatusCode != base.StatusUnauthorized {
		return
	}
	a.challenges, a.nc = nil, 0
	for _, v := range res.Header["WWW-Authenticate"] {
		if p, ok := digestParams(v); ok {
			a.challenges = append(a.challenges, p)
		}
	}
}

// onRequest withholds Basic credentials under auth: digest, and redoes
// gortsplib's Digest response with qop="auth" where the camera asked
// for it.
func (a *authHooks) onRequest(req *base.Request) {
	v := req.Header["Authorization"]
	if len(v) != 1 {
		return
	}
	switch {
	case strings.HasPrefix(v[0], "Basic "):
		if a.digestOnly {
			// Sent without credentials, the request fails as unauthorized.
			delete(req.Header, "Authorization")
			a.refused = withReason(ReasonAuth, errBasicRefused)
			return
		}
		if req.URL.Scheme == "rtsp" {
			a.warnBasic()
		}
	case strings.HasPrefix(v[0], "Digest "):
		var h headers.Authorization
		if h.Unmarshal(v) != nil {
			return
		}
		for _, ch := range a.challenges {
			if ch["nonce"] == h.Nonce && hasToken(ch["qop"], "auth") {
				req.Header["Authorization"] = base.HeaderValue{a.digestQopAuth(ch, h, req.Method)}
				return
			}
		}
	}
}

// explain returns why the session failed when the hooks refused to
// authenticate, and err otherwise.
func (a *authHooks) explain(err error) error {
	if a.refused != nil {
		return a.refused
	}
	return err
}

// digestQopAuth returns the Authorization header for gortsplib's Digest
// response h to challenge ch, with qop="auth" (RFC 7616, section 3.4).
func (a *authHooks) digestQopAuth(ch map[string]string, h headers.Authorization, method base.Method) string {
	hash := func(s string) string { b := md5.Sum([]byte(s)); return hex.EncodeToString(b[:]) }
	if h.Algorithm != nil && *h.Algorithm == headers.AuthAlgorithmSHA256 {
		hash = func(s string) string { b := sha256.Sum256([]byte(s)); return hex.EncodeToString(b[:]) }
	}
	a.nc++
	nc, cnonce := fmt.Sprintf("%08x", a.nc), rand.Text()
	response := hash(hash(a.user+":"+h.Realm+":"+a.pass) + ":" + h.Nonce + ":" + nc + ":" + cnonce + ":auth:" + hash(string(method)+":"+h.URI))
	out := fmt.Sprintf("Digest username=%s, realm=%s, nonce=%s, uri=%s, response=%q, qop=auth, nc=%s, cnonce=%q",
		quote(a.user), quote(h.Realm), quote(h.Nonce), quote(h.URI), response, nc, cnonce)
	if h.Algorithm != nil {
		out += ", algorithm=" + map[headers.AuthAlgorithm]string{headers.AuthAlgorithmMD5: "MD5", headers.AuthAlgorithmSHA256: "SHA-256"}[*h.Algorithm]
	}
	if opaque, ok := ch["opaque"]; ok {
		out += ", opaque=" + quote(opaque)
	}
	return out
}

// digestParams parses the parameters of a Digest challenge, quoted
// strings with commas included (qop="auth,auth-int").
func digestParams(v string) (map[string]string, bool) {
	scheme, rest, _ := strings.Cut(v, " ")
	if !strings.EqualFold(scheme, "Digest") {
		return nil, false
	}
	p := map[string]string{}
	for rest = strings.TrimLeft(rest, " ,"); rest != ""; rest = strings.TrimLeft(rest, " ,") {
		k, after, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		var val string
		if after = strings.TrimLeft(after, " "); strings.HasPrefix(after, `"`) {
			val, rest = unquote(after[1:])
		} else {
			val, rest, _ = strings.Cut(after, ",")
		}
		p[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(val)
	}
	return p, true
}

// unquote returns the content of a quoted string whose opening quote is
// gone, and what follows its closing quote.
func unquote(s string) (val, rest string) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i++; i < len(s) {
				b.WriteByte(s[i])
			}
		case '"':
			return b.String(), s[i+1:]
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String(), ""
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// hasToken reports whether the comma-separated list has token.
func hasToken(list, token string) bool {
	for t := range strings.SplitSeq(list, ",") {
		if strings.EqualFold(strings.TrimSpace(t), token) {
			return true
		}
	}
	return false
}
