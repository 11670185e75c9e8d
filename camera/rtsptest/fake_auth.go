package rtsptest

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// Authentication schemes a FakeAuth can demand.
const (
	// FakeBasic demands Basic, and offers nothing else.
	FakeBasic = "basic"
	// FakeDigestQop demands Digest MD5 with qop="auth", as Dahua cameras
	// do: the response must cover nc and cnonce (RFC 7616), and nc must
	// grow from request to request.
	FakeDigestQop = "digest-qop"
)

// FakeAuth wraps next so that only requests authenticated as user:pass
// with scheme reach it; the others are answered 401 with the scheme's
// challenge. Each connection gets its own nonce.
func FakeAuth(scheme, user, pass string, next func(FakeRequest) FakeResponse) func(FakeRequest) FakeResponse {
	var mu sync.Mutex
	lastNC := map[string]uint64{} // by nonce
	return func(req FakeRequest) FakeResponse {
		nonce := fmt.Sprintf("nonce%d", req.Conn)
		authorization := req.Header.Get("Authorization")
		switch scheme {
		case FakeBasic:
			if authorization == "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+pass)) {
				return next(req)
			}
			return FakeResponse{Status: http.StatusUnauthorized, Header: map[string][]string{
				"WWW-Authenticate": {`Basic realm="fake"`},
			}}
		case FakeDigestQop:
			p := digestParams(authorization)
			nc, err := strconv.ParseUint(p["nc"], 16, 32)
			mu.Lock()
			fresh := err == nil && nc > lastNC[nonce]
			if fresh {
				lastNC[nonce] = nc
			}
			mu.Unlock()
			ha1 := md5Hex(user + ":fake:" + pass)
			ha2 := md5Hex(req.Method + ":" + p["uri"])
			want := md5Hex(ha1 + ":" + nonce + ":" + p["nc"] + ":" + p["cnonce"] + ":auth:" + ha2)
			if fresh && p["qop"] == "auth" && p["cnonce"] != "" && p["nonce"] == nonce && p["username"] == user && p["response"] == want {
				return next(req)
			}
			return FakeResponse{Status: http.StatusUnauthorized, Header: map[string][]string{
				"WWW-Authenticate": {fmt.Sprintf(`Digest realm="fake", qop="auth", nonce=%q, opaque="op"`, nonce)},
			}}
		}
		panic("rtsptest: unknown FakeAuth scheme " + scheme)
	}
}

// digestParams parses the parameters of a Digest Authorization header; it
// returns none for any other.
func digestParams(h string) map[string]string {
	p := map[string]string{}
	rest, ok := strings.CutPrefix(h, "Digest ")
	for ok && rest != "" {
		var k, v string
		k, rest, ok = strings.Cut(strings.TrimLeft(rest, " ,"), "=")
		if strings.HasPrefix(rest, `"`) {
			v, rest, ok = strings.Cut(rest[1:], `"`)
		} else {
			v, rest, _ = strings.Cut(rest, ",")
		}
		p[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return p
}

func md5Hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}
