package auth

import (
	"crypto/subtle"
	"net/http"
	"strings"
)

// BearerToken returns the bearer token a request's Authorization header
// carries, and whether it carries one.
func BearerToken(h http.Header) (string, bool) {
	return strings.CutPrefix(h.Get("Authorization"), "Bearer ")
}

// IsToken reports whether tok is the token want, in constant time. An
// empty want matches nothing: a node without an admin token lets no one in
// as admin.
func IsToken(tok, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(want)) == 1
}
