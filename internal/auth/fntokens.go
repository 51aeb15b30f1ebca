package auth

import (
	"crypto/rand"
	"encoding/base64"
	"strings"
	"sync"
)

// Principals say who made a call, in one vocabulary: the events' publisher
// attribute, the catalog's publishers and the stored events say the same.
const (
	// PrincipalAdmin is a caller with the admin token.
	PrincipalAdmin = "admin"
	// PrincipalNode is the node itself: dead letters, destination
	// records, spend-cap notices.
	PrincipalNode = "node"
	// functionPrincipal + NAME is a function's own token.
	functionPrincipal = "function:"
)

// FunctionPrincipal is the principal of a function's own token.
func FunctionPrincipal(function string) string { return functionPrincipal + function }

// PrincipalFunction returns the function a principal names, if it names one.
func PrincipalFunction(principal string) (string, bool) {
	return strings.CutPrefix(principal, functionPrincipal)
}

// PrincipalKind is what kind of caller a principal is: admin, function or
// node; a bounded set, for metric labels.
func PrincipalKind(principal string) string {
	if _, ok := PrincipalFunction(principal); ok {
		return "function"
	}
	return principal
}

// FunctionTokens are the tokens this node hands its function instances
// (WISP_API_TOKEN), each scoped to one function: they name the caller on
// the node's API and are never accepted where the admin token is needed.
// They live in memory: an instance only ever talks to the node that runs it.
type FunctionTokens struct {
	mu     sync.RWMutex
	tokens map[string]string // guarded by mu; token → function
}

// NewFunctionTokens returns an empty set.
func NewFunctionTokens() *FunctionTokens {
	return &FunctionTokens{tokens: map[string]string{}}
}

// functionTokenPrefix marks a function token, so an API can tell one from
// a wrong admin token and answer 403 rather than 401.
const functionTokenPrefix = "wfn_"

// Issue makes a token for an instance of function.
func (ft *FunctionTokens) Issue(function string) string {
	var b [24]byte
	rand.Read(b[:]) //nolint:errcheck // crypto/rand.Read never fails (Go 1.24+)
	tok := functionTokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	ft.mu.Lock()
	defer ft.mu.Unlock()
	ft.tokens[tok] = function
	return tok
}

// Revoke ends a token, when its instance stops.
func (ft *FunctionTokens) Revoke(tok string) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	delete(ft.tokens, tok)
}

// Principal returns the principal of a function's token.
func (ft *FunctionTokens) Principal(tok string) (string, bool) {
	fn, ok := ft.Function(tok)
	if !ok {
		return "", false
	}
	return FunctionPrincipal(fn), true
}

// Function returns the function a token belongs to.
func (ft *FunctionTokens) Function(tok string) (string, bool) {
	if ft == nil || !strings.HasPrefix(tok, functionTokenPrefix) {
		return "", false
	}
	ft.mu.RLock()
	defer ft.mu.RUnlock()
	fn, ok := ft.tokens[tok]
	return fn, ok
}
