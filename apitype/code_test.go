package apitype

import (
	"strings"
	"testing"
)

func TestCleanEntryName(t *testing.T) {
	tests := []struct {
		name, raw, want, err string
	}{
		{"plain", "lib/util.js", "lib/util.js", ""},
		{"dot segments", "./lib//./util.js", "lib/util.js", ""},
		{"directory", "lib/", "lib", ""},
		{"root", "./", ".", ""},
		{"backslashes", `lib\util.js`, "lib/util.js", ""},
		{"empty", "", "", "empty entry name"},
		{"parent", "lib/../../x", "", `path has a ".." element`},
		{"absolute", "/etc/passwd", "", "absolute path"},
		{"drive", `C:\x`, "", "absolute path"},
		{"NUL", "a\x00b", "", "contains NUL"},
		{"long element", strings.Repeat("a", MaxPathElement+1), "", "path element longer than 255 bytes"},
		{"long name", strings.Repeat("a/", MaxEntryPath/2+1), "", "name longer than 1024 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CleanEntryName(tc.raw)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("CleanEntryName(%q) = %q, %v; want an error containing %q", tc.raw, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("CleanEntryName(%q) = %q, %v; want %q", tc.raw, got, err, tc.want)
			}
		})
	}
}

func TestCleanLinkTarget(t *testing.T) {
	tests := []struct {
		name, link, target, want, err string
	}{
		{"sibling", "lib/up", "../bootstrap", "../bootstrap", ""},
		{"cleaned", "sub/self", "./../sub/./a", "../sub/a", ""},
		{"root from a subdir", "a/b/l", "../..", "../..", ""},
		{"outside", "l", "../x", "", "points outside the root"},
		{"outside through a subdir", "a/l", "b/../../../x", "", "points outside the root"},
		{"absolute", "l", "/etc", "", "absolute target"},
		{"backslash", "l", `a\b`, "", "contains a backslash"},
		{"empty", "l", "", "", "empty target"},
		{"NUL", "l", "a\x00", "", "contains NUL"},
		{"long", "l", strings.Repeat("a", MaxEntryPath+1), "", "target longer than 1024 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CleanLinkTarget(tc.link, tc.target)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("CleanLinkTarget(%q, %q) = %q, %v; want an error containing %q", tc.link, tc.target, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("CleanLinkTarget(%q, %q) = %q, %v; want %q", tc.link, tc.target, got, err, tc.want)
			}
		})
	}
}
