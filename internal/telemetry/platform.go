package telemetry

import (
	"fmt"
	"strconv"
	"time"
)

// The platform lines Lambda writes around every invocation, in Lambda's
// exact text, so tools that parse CloudWatch logs parse ours.

// StartLine is the line before an invocation's own output:
// "START RequestId: <id> Version: <version>".
func StartLine(requestID, version string) string {
	return "START RequestId: " + requestID + " Version: " + version
}

// EndLine is the line after an invocation's own output:
// "END RequestId: <id>".
func EndLine(requestID string) string {
	return "END RequestId: " + requestID
}

// ReportLine is the line that sums an invocation up, its fields separated by
// tabs as Lambda's are:
//
//	REPORT RequestId: <id>	Duration: 12.34 ms	Billed Duration: 13 ms	Memory Size: 128 MB	Max Memory Used: 20 MB
//
// followed by "	Init Duration: 5.67 ms" when the invocation was a cold
// start (initDuration > 0). The billed duration is BilledMs(duration).
func ReportLine(requestID string, duration time.Duration, memoryMB, maxMemoryMB int, initDuration time.Duration) string {
	line := fmt.Sprintf("REPORT RequestId: %s\tDuration: %s ms\tBilled Duration: %d ms\tMemory Size: %d MB\tMax Memory Used: %d MB",
		requestID, millis(duration), BilledMs(duration), memoryMB, maxMemoryMB)
	if initDuration > 0 {
		line += "\tInit Duration: " + millis(initDuration) + " ms"
	}
	return line
}

// millis is d in milliseconds with two decimals, as the REPORT line has it.
func millis(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64)
}

// BilledMs is the billed duration of an invocation that ran for d: d
// rounded up to the next whole millisecond, and at least 1 ms, as Lambda
// bills. The REPORT line and metering both use it, so they always agree.
func BilledMs(d time.Duration) int64 {
	if d <= time.Millisecond {
		return 1
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}
