package invoke

import (
	"errors"
	"strings"
	"testing"

	"github.com/wisp-dev/wisp/internal/runtime"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload string
		want    error
	}{
		{"empty", "", nil},
		{"blank", " \n", nil},
		{"object", `{"a":"é"}`, nil},
		{"null", "null", nil},
		{"not JSON", "{", ErrInvalidContent},
		{"two values", "1 2", ErrInvalidContent},
		{"not UTF-8 in a string", "{\"a\":\"\xff\"}", ErrInvalidContent},
		{"truncated rune", "\"\xe2\x82\"", ErrInvalidContent},
		{"overlong encoding", "\"\xc0\xaf\"", ErrInvalidContent},
		{"surrogate half", "\"\xed\xa0\x80\"", ErrInvalidContent},
		{"too large", `"` + strings.Repeat("a", runtime.MaxRequestBytes) + `"`, ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Check([]byte(tc.payload)); !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Errorf("Check = %v, want %v", err, tc.want)
			}
		})
	}
}
