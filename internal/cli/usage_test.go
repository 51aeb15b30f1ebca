package cli

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/internal/meter"
)

// usageOf is a function's usage by day over the 8 days before testNow,
// memoryMB and billedMs per invocation.
func usageOf(name string, counts []int64, errors, cold int64, memoryMB, billedMs int64) apitype.FunctionUsage {
	f := apitype.FunctionUsage{Function: name, Buckets: []apitype.UsageBucket{}}
	start := time.Date(2026, 11, 16, 0, 0, 0, 0, time.UTC)
	var total meter.Usage // the node's arithmetic, on its own type
	for i, n := range counts {
		u := meter.Usage{Invocations: n, BilledMs: n * billedMs, MBms: n * billedMs * memoryMB, DurationUs: n * billedMs * 900}
		f.Buckets = append(f.Buckets, apitype.UsageBucket{Start: start.AddDate(0, 0, i), Usage: apitype.Usage(u),
			GBSeconds: u.GBSeconds(), Cost: meter.LambdaX86.Cost(u)})
		total = total.Plus(u)
	}
	total.Errors, total.ColdStarts = errors, cold
	f.Usage = apitype.Usage(total)
	f.GBSeconds, f.Cost = total.GBSeconds(), meter.LambdaX86.Cost(total)
	return f
}

// usageReport is a node's report of fns by day over the week before testNow.
func usageReport(prices meter.Prices, fns ...apitype.FunctionUsage) apitype.UsageReport {
	rep := apitype.UsageReport{Granularity: "day", From: testNow.AddDate(0, 0, -7), To: testNow,
		Prices: apitype.Prices(prices), LambdaX86: apitype.Prices(meter.LambdaX86), Functions: fns}
	rep.Total.Start = rep.From
	var total meter.Usage
	for i, f := range fns {
		fns[i].Cost = prices.Cost(meter.Usage(f.Usage))
		fns[i].Buckets = slices.Clone(f.Buckets)
		for j, b := range fns[i].Buckets {
			fns[i].Buckets[j].Cost = prices.Cost(meter.Usage(b.Usage))
		}
		total = total.Plus(meter.Usage(f.Usage))
	}
	rep.Total.Usage = apitype.Usage(total)
	rep.Total.GBSeconds, rep.Total.Cost = total.GBSeconds(), prices.Cost(total)
	return rep
}

// usageNode answers GET /v1/usage with rep and GET /v1/functions/NAME for
// the functions in known; query gets each usage query.
func usageNode(t *testing.T, rep apitype.UsageReport, query *string, known ...string) []string {
	return fakeNode(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/usage":
			*query = r.URL.RawQuery
			b, err := json.Marshal(rep)
			if err != nil {
				t.Error(err)
			}
			answer(w, 200, string(b))
			return
		}
		for _, fn := range known {
			if r.URL.Path == "/v1/functions/"+fn {
				answer(w, 200, `{"name":"`+fn+`"}`)
				return
			}
		}
		answer(w, 404, `{"type":"ResourceNotFoundException","message":"function not found"}`)
	})
}

func TestUsage(t *testing.T) {
	hello := usageOf("hello", []int64{0, 12, 24, 0, 36, 48, 72, 96}, 3, 2, 128, 2)
	resize := usageOf("resize", []int64{0, 0, 0, 0, 0, 0, 0, 5}, 0, 5, 1024, 1500)
	quiet := usageOf("quiet", make([]int64, 8), 0, 0, 128, 1)
	cheap := meter.Prices{PerRequest: 0.1 / 1e6, PerGBSecond: 0.00001}
	tests := []struct {
		name      string
		args      []string
		rep       apitype.UsageReport
		known     []string
		wantQuery string
		want      string
	}{
		{
			name:      "every function",
			rep:       usageReport(meter.LambdaX86, hello, resize),
			wantQuery: "from=7d",
			want: "" +
				"FUNCTION   INVOCATIONS   ERRORS   COLD   GB-S    COST        TREND\n" +
				"hello      288           3        2      0.072   $0.000059    ▁▂ ▃▄▆█\n" +
				"resize     5             0        5      7.50    $0.00013           █\n" +
				"TOTAL      293           3        7      7.57    $0.00018     ▁▂ ▃▄▆█\n" +
				"2026-11-16T16:00:00Z to 2026-11-23T16:00:00Z by day (TREND: invocations per day, the last 8)\n" +
				"prices: $0.20 per 1M requests, $0.0000166667 per GB-s (AWS Lambda x86: $0.20 per 1M requests, $0.0000166667 per GB-s)\n",
		},
		{
			name:      "named functions by hour at the node's own prices",
			args:      []string{"hello", "quiet", "--since", "36h", "--granularity", "hour"},
			rep:       usageReport(cheap, hello, quiet),
			known:     []string{"quiet"},
			wantQuery: "from=36h&function=hello%2Cquiet&granularity=hour",
			want: "" +
				"FUNCTION   INVOCATIONS   ERRORS   COLD   GB-S    COST        TREND\n" +
				"hello      288           3        2      0.072   $0.000030    ▁▂ ▃▄▆█\n" +
				"quiet      0             0        0      0       $0\n" +
				"TOTAL      288           3        2      0.072   $0.000030    ▁▂ ▃▄▆█\n" +
				"2026-11-16T16:00:00Z to 2026-11-23T16:00:00Z by day (TREND: invocations per day, the last 8)\n" +
				"prices: $0.10 per 1M requests, $0.00001 per GB-s (AWS Lambda x86: $0.20 per 1M requests, $0.0000166667 per GB-s)\n",
		},
		{
			name:      "nothing ran",
			args:      []string{"--since", "2026-11-01T00:00:00Z"},
			rep:       usageReport(meter.LambdaX86),
			wantQuery: "from=2026-11-01T00%3A00%3A00Z",
			want: "" +
				"FUNCTION   INVOCATIONS   ERRORS   COLD   GB-S   COST   TREND\n" +
				"TOTAL      0             0        0      0      $0\n" +
				"2026-11-16T16:00:00Z to 2026-11-23T16:00:00Z by day (TREND: invocations per day)\n" +
				"prices: $0.20 per 1M requests, $0.0000166667 per GB-s (AWS Lambda x86: $0.20 per 1M requests, $0.0000166667 per GB-s)\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var query string
			stdout, stderr, err := runCLI(t, usageNode(t, tt.rep, &query, tt.known...), append([]string{"usage"}, tt.args...)...)
			if err != nil {
				t.Fatalf("wisp usage: %v (stderr %q)", err, stderr)
			}
			if query != tt.wantQuery {
				t.Errorf("query = %q, want %q", query, tt.wantQuery)
			}
			if stdout != tt.want {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout, tt.want)
			}
		})
	}
}

func TestUsageJSON(t *testing.T) {
	rep := usageReport(meter.LambdaX86, usageOf("hello", []int64{1, 2}, 0, 1, 128, 1))
	var query string
	stdout, stderr, err := runCLI(t, usageNode(t, rep, &query), "usage", "-o", "json")
	if err != nil {
		t.Fatalf("wisp usage: %v (stderr %q)", err, stderr)
	}
	var got apitype.UsageReport
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("stdout is not a report: %v\n%s", err, stdout)
	}
	if len(got.Functions) != 1 || got.Functions[0].Invocations != 3 || len(got.Functions[0].Buckets) != 2 ||
		got.Total.Invocations != 3 || got.LambdaX86 != apitype.Prices(meter.LambdaX86) {
		t.Errorf("stdout = %s", stdout)
	}
}

func TestUsageUnknownFunction(t *testing.T) {
	var query string
	rep := usageReport(meter.LambdaX86, usageOf("nope", []int64{0}, 0, 0, 128, 1))
	stdout, stderr, err := runCLI(t, usageNode(t, rep, &query), "usage", "nope")
	if err == nil || stderr != "wisp: function not found (ResourceNotFoundException)\n" || stdout != "" {
		t.Errorf("err %v, stdout %q, stderr %q", err, stdout, stderr)
	}
}

const recordsJSON = `{"records":[
	{"function":"hello","version":"$LATEST","request_id":"8f507cfc-1b2a-4697-b07a-ac58fc914c95","trigger":"sync",
	 "start":"2026-11-23T15:59:00.5Z","duration_us":91234,"billed_ms":92,"memory_mb":128,"cold":true,"init_us":80000,"outcome":"success"},
	{"function":"hello","version":"2","request_id":"d2c0b7f2-6a4e-4f5e-9c1d-0b8e3c6f2a11","trigger":"event",
	 "start":"2026-11-23T15:59:30Z","duration_us":3000123,"billed_ms":3001,"memory_mb":1024,"outcome":"timeout"}]}`

func TestUsageRecords(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantQuery  string
		want       string
		wantStderr string
	}{
		{
			name:      "table",
			args:      []string{"--records"},
			wantQuery: "function=hello&limit=50",
			want: "" +
				"START                      REQUEST-ID                             TRIGGER   DURATION     BILLED    MEMORY    GB-S    COLD   OUTCOME\n" +
				"2026-11-23T15:59:00.500Z   8f507cfc-1b2a-4697-b07a-ac58fc914c95   sync      91.23 ms     92 ms     128 MB    0.011   yes    success\n" +
				"2026-11-23T15:59:30.000Z   d2c0b7f2-6a4e-4f5e-9c1d-0b8e3c6f2a11   event     3000.12 ms   3001 ms   1024 MB   3.00    no     timeout\n",
		},
		{
			name:       "a full page",
			args:       []string{"--records", "--since", "1d", "--limit", "2"},
			wantQuery:  "from=1d&function=hello&limit=2",
			want:       "START                      REQUEST-ID                             TRIGGER   DURATION     BILLED    MEMORY    GB-S    COLD   OUTCOME\n",
			wantStderr: "more records may follow: --since 2026-11-23T15:59:30.000000001Z\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var query string
			env := fakeNode(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v1/usage/records" {
					t.Errorf("request %s", r.URL.Path)
				}
				query = r.URL.RawQuery
				answer(w, 200, recordsJSON)
			})
			stdout, stderr, err := runCLI(t, env, append([]string{"usage", "hello"}, tt.args...)...)
			if err != nil {
				t.Fatalf("wisp usage: %v (stderr %q)", err, stderr)
			}
			if query != tt.wantQuery {
				t.Errorf("query = %q, want %q", query, tt.wantQuery)
			}
			if !strings.HasPrefix(stdout, tt.want) {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout, tt.want)
			}
			if stderr != tt.wantStderr {
				t.Errorf("stderr = %q, want %q", stderr, tt.wantStderr)
			}
		})
	}

	env := fakeNode(t, func(w http.ResponseWriter, r *http.Request) { answer(w, 200, recordsJSON) })
	stdout, _, err := runCLI(t, env, "usage", "hello", "--records", "-o", "json")
	var recs []apitype.UsageRecord
	if err != nil || json.Unmarshal([]byte(stdout), &recs) != nil || len(recs) != 2 || recs[1].Outcome != "timeout" {
		t.Errorf("-o json: %v %s", err, stdout)
	}
}

func TestUsageRefuses(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--granularity", "week"}, `wisp: --granularity "week" must be hour or day (see 'wisp usage --help')`},
		{[]string{"--records"}, `wisp: --records lists one function's invocations: give exactly one NAME, not 0 (see 'wisp usage --help')`},
		{[]string{"a", "b", "--records"}, `wisp: --records lists one function's invocations: give exactly one NAME, not 2 (see 'wisp usage --help')`},
		{[]string{"a", "--records", "--granularity", "day"}, `wisp: --granularity applies to the summary, not --records (see 'wisp usage --help')`},
		{[]string{"a", "--records", "--limit", "0"}, `wisp: --limit 0 must be 1 to 10000 (see 'wisp usage --help')`},
		{[]string{"--limit", "5"}, `wisp: --limit applies to --records (see 'wisp usage --help')`},
		{[]string{"--since", "yesterday"}, `wisp: --since "yesterday" is not a duration (such as 7d or 36h) or an RFC 3339 time (see 'wisp usage --help')`},
		{[]string{"Hello"}, `wisp: function name "Hello" must match [a-z][a-z0-9-]{0,62} (see 'wisp usage --help')`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			stdout, stderr, err := runCLI(t, []string{"WISP_URL=127.0.0.1:1", "WISP_TOKEN=tok"}, append([]string{"usage"}, tt.args...)...)
			if err == nil || stderr != tt.want+"\n" || stdout != "" {
				t.Errorf("err %v, stdout %q, stderr %q, want %q", err, stdout, stderr, tt.want)
			}
		})
	}
}

func TestSparkline(t *testing.T) {
	tests := []struct {
		name   string
		counts []int64
		want   string
	}{
		{"none", nil, ""},
		{"all zero", []int64{0, 0, 0}, "   "},
		{"every level", []int64{1, 2, 3, 4, 5, 6, 7, 8}, "▁▂▃▄▅▆▇█"},
		{"one", []int64{5}, "█"},
		{"a little beside a lot", []int64{1, 0, 1000}, "▁ █"},
		{"the last 24 of 30", append([]int64{1000, 1000, 1000, 1000, 1000, 1000}, make([]int64, 24)...), "                        "},
		{"the last 24 of 30, rising", func() []int64 {
			c := make([]int64, 30)
			for i := range c {
				c[i] = int64(i)
			}
			return c
		}(), "▂▂▃▃▃▄▄▄▄▅▅▅▅▆▆▆▇▇▇▇████"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sparkline(tt.counts); got != tt.want {
				t.Errorf("sparkline(%v) = %q, want %q", tt.counts, got, tt.want)
			}
		})
	}
}

func TestDecimal(t *testing.T) {
	tests := []struct {
		v    float64
		want string
	}{
		{0, "0"},
		{0.0000421, "0.000042"},
		{0.000125, "0.00013"},
		{0.099, "0.099"},
		{0.5, "0.50"},
		{7.5, "7.50"},
		{1234.567, "1234.57"},
		{1e-15, "0.000000000000"},
	}
	for _, tt := range tests {
		if got := decimal(tt.v); got != tt.want {
			t.Errorf("decimal(%v) = %q, want %q", tt.v, got, tt.want)
		}
	}
	for v, want := range map[float64]string{0.2 / 1e6 * 1e6: "0.20", 0.0000166667: "0.0000166667", 3: "3.00", 0.125: "0.125"} {
		if got := price(v); got != want {
			t.Errorf("price(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestQuotaText(t *testing.T) {
	tests := []struct {
		q    *apitype.Quota
		want string
	}{
		{nil, "none"},
		{&apitype.Quota{Period: "day", MaxInvocations: 1000}, "1000 invocations per day; capped events wait"},
		{&apitype.Quota{Period: "month", MaxInvocations: 5, MaxGBSeconds: 3.6, MaxCost: 1.5, Async: "fail"},
			"5 invocations, 3.6 GB-s, $1.5 per month; capped events fail"},
	}
	for _, tt := range tests {
		if got := quotaText(tt.q); got != tt.want {
			t.Errorf("quotaText(%+v) = %q, want %q", tt.q, got, tt.want)
		}
	}
}

func TestServerMeterFlags(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantPrices meter.Prices
		wantQuota  string // as JSON; "" for none
		wantErr    string
	}{
		{name: "defaults: Lambda's prices, no quota", wantPrices: meter.LambdaX86},
		{
			name:       "prices and a quota",
			args:       []string{"--price-request", "0.0000001", "--price-gb-second", "0.00001", "--quota-period", "month", "--quota-cost", "20"},
			wantPrices: meter.Prices{PerRequest: 0.0000001, PerGBSecond: 0.00001},
			wantQuota:  `{"period":"month","max_cost":20}`,
		},
		{name: "an empty period is no quota", args: []string{"--quota-period", ""}, wantPrices: meter.LambdaX86},
		{name: "a cap without a period", args: []string{"--quota-invocations", "5"}, wantErr: "--quota-period (hour, day or month) is needed to set a quota"},
		{name: "a period without a cap", args: []string{"--quota-period", "day"},
			wantErr: "a quota needs --quota-invocations, --quota-gb-seconds or --quota-cost (--quota-period '' removes it)"},
		{name: "a bad period", args: []string{"--quota-period", "week", "--quota-cost", "1"}, wantErr: `--quota-period "week" must be hour, day or month`},
		{name: "a negative cap", args: []string{"--quota-period", "day", "--quota-cost", "-1"}, wantErr: "the --quota maximums must not be negative"},
		{name: "a negative price", args: []string{"--price-request", "-1"}, wantErr: `invalid argument "-1" for "--price-request" flag: must be a number of dollars, 0 or more`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fl := pflag.NewFlagSet("server", pflag.ContinueOnError)
			var m meterFlags
			m.add(fl)
			err := fl.Parse(tt.args)
			var prices *meter.Prices
			var quota any
			if err == nil {
				prices, quota, err = m.config(fl)
			}
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *prices != tt.wantPrices {
				t.Errorf("prices = %+v, want %+v", *prices, tt.wantPrices)
			}
			if got := jsonString(t, quota); tt.wantQuota == "" && got != "null" || tt.wantQuota != "" && got != tt.wantQuota {
				t.Errorf("quota = %s, want %s", got, tt.wantQuota)
			}
		})
	}
}
