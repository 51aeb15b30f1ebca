package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/client"
	"github.com/wisp-dev/wisp/internal/nodestats"
	"github.com/wisp-dev/wisp/internal/server"
)

// A deleted function leaves no metric series behind: functions made and
// deleted over a node's life do not grow its metrics without bound.
func TestDeletedFunctionLeavesNoSeries(t *testing.T) {
	n := startNode(t, server.Config{})
	ctx := context.Background()
	for _, name := range []string{"gone", "kept"} {
		n.deploy(t, helloGo(t), apitype.Config{Name: name, Runtime: ptr("provided")})
		if _, err := n.c.Invoke(ctx, name, []byte(`{"name":"a"}`), client.InvokeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	series := func(fn string) []string {
		fams, err := nodestats.Metrics(ctx, n.c)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for name, f := range fams {
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "function" && l.GetValue() == fn {
						out = append(out, name)
					}
				}
			}
		}
		return out
	}
	if s := series("gone"); len(s) < 3 {
		t.Fatalf("series of a function that ran: %v", s)
	}
	// GET /v1/stats sums the same series.
	stats, err := n.c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) != 2 || stats[0].Function != "gone" || stats[1].Function != "kept" {
		t.Fatalf("stats: %+v, want gone and kept", stats)
	}
	for _, s := range stats {
		if s.Invocations != 1 || s.Errors != 0 || s.ColdStarts != 1 || s.P50 == nil {
			t.Errorf("stats of %s: %+v, want 1 invocation, a cold start and a duration", s.Function, s)
		}
	}
	if err := n.c.DeleteFunction(ctx, "gone", 0); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the deleted function's series are gone", func() bool { return len(series("gone")) == 0 })
	if s := series("kept"); len(s) < 3 {
		t.Errorf("series of the function kept: %v", s)
	}
	if stats, err := n.c.Stats(ctx); err != nil || len(stats) != 1 || stats[0].Function != "kept" {
		t.Errorf("stats after the delete: %+v (%v), want kept's alone", stats, err)
	}
}
