// Package gateway owns the data-plane HTTP surface of a node: it turns HTTP
// requests into invocations and their results back into HTTP responses. It
// speaks AWS Lambda's Invoke API and serves function URLs with the API Gateway
// HTTP API payload format 2.0, as Lambda function URLs do.
package gateway
