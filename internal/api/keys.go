package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/internal/auth"
)

// Access keys: the key pairs AWS SDKs sign requests with (SigV4). Their
// secrets are shown once, in the answer to POST /v1/keys.

// needKeys is the answer of /v1/keys on a node built without access keys.
func (a *api) needKeys() error {
	if a.keys == nil {
		return &Error{http.StatusNotImplemented, apitype.TypeService, "access keys are not enabled on this node"}
	}
	return nil
}

func (a *api) createKey(w http.ResponseWriter, r *http.Request) error {
	if err := a.needKeys(); err != nil {
		return err
	}
	var body struct {
		Description string `json:"description"`
	}
	if err := decodeJSON(r.Body, &body, true); err != nil {
		return err
	}
	key, err := a.keys.Create(r.Context(), body.Description)
	if errors.Is(err, auth.ErrInvalidDescription) {
		return badRequest(fmt.Sprintf("description must be UTF-8 text of at most %d characters", auth.MaxKeyDescription))
	}
	if err != nil {
		return err
	}
	// The secret is in this answer and nowhere else: keep it out of caches.
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, key)
	return nil
}

func (a *api) listKeys(w http.ResponseWriter, r *http.Request) error {
	if err := a.needKeys(); err != nil {
		return err
	}
	keys, err := a.keys.List(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Keys []apitype.AccessKey `json:"keys"`
	}{keys})
	return nil
}

func (a *api) deleteKey(w http.ResponseWriter, r *http.Request) error {
	if err := a.needKeys(); err != nil {
		return err
	}
	id := r.PathValue("id")
	err := a.keys.Delete(r.Context(), id)
	if errors.Is(err, auth.ErrKeyNotFound) {
		return apiError(apitype.TypeResourceNotFound, fmt.Sprintf("access key %q not found", id))
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
