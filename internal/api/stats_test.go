package api_test

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/internal/api"
)

func TestStatsAPI(t *testing.T) {
	p50 := 21.25
	tests := []struct {
		name       string
		stats      func() ([]apitype.FunctionStats, error)
		token      string
		wantStatus int
		wantType   string // the error's type, for an error
		want       string // the body without spaces, for a 200
	}{
		{
			name: "by function name",
			stats: func() ([]apitype.FunctionStats, error) {
				return []apitype.FunctionStats{{Function: "world", Idle: 1},
					{Function: "hello", Invocations: 3, Errors: 1, Throttles: 1, ColdStarts: 1, P50: &p50, P99: &p50, Busy: 2, Starting: 1, Queued: 4}}, nil
			},
			token: "tok", wantStatus: http.StatusOK,
			want: `{"functions":[` +
				`{"function":"hello","invocations":3,"errors":1,"throttles":1,"cold_starts":1,"p50_ms":21.25,"p99_ms":21.25,"idle":0,"busy":2,"starting":1,"queued":4},` +
				`{"function":"world","invocations":0,"errors":0,"throttles":0,"cold_starts":0,"p50_ms":null,"p99_ms":null,"idle":1,"busy":0,"starting":0,"queued":0}]}`,
		},
		{
			name:  "nothing ran",
			stats: func() ([]apitype.FunctionStats, error) { return nil, nil },
			token: "tok", wantStatus: http.StatusOK, want: `{"functions":[]}`,
		},
		{
			name:  "metrics not gathered",
			stats: func() ([]apitype.FunctionStats, error) { return nil, errors.New("collector broke") },
			token: "tok", wantStatus: http.StatusInternalServerError, wantType: apitype.TypeService,
		},
		{
			name:  "disabled",
			token: "tok", wantStatus: http.StatusNotImplemented, wantType: apitype.TypeService,
		},
		{
			name:  "wrong token",
			stats: func() ([]apitype.FunctionStats, error) { t.Error("stats read with a wrong token"); return nil, nil },
			token: "nope", wantStatus: http.StatusUnauthorized, wantType: apitype.TypeUnauthorized,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(api.New(api.Config{AdminToken: "tok", Stats: tt.stats, Logger: slog.New(slog.DiscardHandler)}))
			defer srv.Close()
			r := apiClient{t: t, base: srv.URL, token: tt.token}.do("GET", "/v1/stats", "", nil)
			mustStatus(t, r, tt.wantStatus)
			if tt.wantType != "" {
				if got := r.errType(); got != tt.wantType {
					t.Errorf("error type %q, want %q: %s", got, tt.wantType, r.body)
				}
				return
			}
			if got := strings.Join(strings.Fields(string(r.body)), ""); got != tt.want {
				t.Errorf("body:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}
