package runtime

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ReservedEnv reports whether the platform owns an environment variable
// name: a function's own variables cannot set it.
func ReservedEnv(k string) bool {
	return strings.HasPrefix(k, "AWS_") || strings.HasPrefix(k, "LAMBDA_") || k == "_HANDLER" || k == "_X_AMZN_TRACE_ID"
}

// FunctionEnv returns a function's own variables as K=V, in name order,
// without those the platform owns or that no environment can hold (empty
// names, '=' or NUL); dropped names those left out.
func FunctionEnv(env map[string]string) (kv, dropped []string) {
	for _, k := range slices.Sorted(maps.Keys(env)) {
		v := env[k]
		if ReservedEnv(k) || k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			dropped = append(dropped, k)
			continue
		}
		kv = append(kv, k+"="+v)
	}
	return kv, dropped
}

// LambdaEnv returns the variables Lambda gives every instance of spec
// (as K=V): its name, version, memory, log group and stream, region.
func LambdaEnv(spec Spec, region string, now time.Time) []string {
	version := spec.Version
	if version == "" {
		version = "$LATEST"
	}
	mem := spec.MemoryMB
	if mem <= 0 {
		mem = 128
	}
	return []string{
		"AWS_LAMBDA_FUNCTION_NAME=" + spec.Function,
		"AWS_LAMBDA_FUNCTION_VERSION=" + version,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=" + strconv.Itoa(mem),
		"AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/" + spec.Function,
		"AWS_LAMBDA_LOG_STREAM_NAME=" + now.UTC().Format("2006/01/02") + "/[" + version + "]" + spec.InstanceID,
		"AWS_LAMBDA_INITIALIZATION_TYPE=on-demand",
		"AWS_REGION=" + region,
		"AWS_DEFAULT_REGION=" + region,
		"AWS_EXECUTION_ENV=AWS_Lambda_" + spec.Runtime,
	}
}
