package api

import (
	"cmp"
	"net/http"
	"slices"

	"github.com/wisp-dev/wisp/apitype"
)

// getStats answers GET /v1/stats: every function's activity on this node,
// by name. The CLI picks one function out itself, so there is no filter.
func (a *api) getStats(w http.ResponseWriter, r *http.Request) error {
	if a.stats == nil {
		return &Error{http.StatusNotImplemented, apitype.TypeService, "stats are not enabled on this node"}
	}
	stats, err := a.stats()
	if err != nil {
		return err
	}
	if stats == nil {
		stats = []apitype.FunctionStats{}
	}
	slices.SortFunc(stats, func(x, y apitype.FunctionStats) int { return cmp.Compare(x.Function, y.Function) })
	writeJSON(w, http.StatusOK, struct {
		Functions []apitype.FunctionStats `json:"functions"`
	}{stats})
	return nil
}
