// Package auth owns who may call a Wisp node: API tokens, access key pairs and
// request signatures (AWS Signature Version 4, so that AWS SDKs and the AWS CLI
// pointed at Wisp authenticate with a Wisp access key pair).
package auth
