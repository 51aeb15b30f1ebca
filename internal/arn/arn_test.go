package arn_test

import (
	"testing"

	"github.com/wisp-dev/wisp/internal/arn"
)

func TestFunction(t *testing.T) {
	tests := []struct {
		name, fn, qualifier, want string
	}{
		{"unqualified", "hello", "", "arn:aws:lambda:eu-west-1:123456789012:function:hello"},
		{"a version", "hello", "3", "arn:aws:lambda:eu-west-1:123456789012:function:hello:3"},
		{"$LATEST", "hello", "$LATEST", "arn:aws:lambda:eu-west-1:123456789012:function:hello:$LATEST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := arn.Function("eu-west-1", "123456789012", tt.fn, tt.qualifier); got != tt.want {
				t.Errorf("Function = %q, want %q", got, tt.want)
			}
		})
	}
}
