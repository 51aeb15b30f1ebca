// Package arn names a node's functions as AWS does, for the SDKs and
// functions that expect it: the region and account a node reports unless
// told otherwise, and Lambda function ARNs. It imports nothing of Wisp, so
// the runtimes, the invoker, the events and the gateway agree on it.
package arn

const (
	// DefaultRegion is the region of a node whose config names none:
	// functions are told they run in it, and SigV4 signatures must be
	// scoped to it.
	DefaultRegion = "us-east-1"
	// DefaultAccount is the account in a node's ARNs when its config names
	// none.
	DefaultAccount = "000000000000"
)

// Function is the ARN of a function, qualified by a version or alias
// unless qualifier is empty:
// arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER].
func Function(region, account, name, qualifier string) string {
	a := "arn:aws:lambda:" + region + ":" + account + ":function:" + name
	if qualifier != "" {
		a += ":" + qualifier
	}
	return a
}
