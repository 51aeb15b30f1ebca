// Command hello-wasm-go is a Wisp function for the wasm runtime: a WASI
// preview 1 command built with
//
//	GOOS=wasip1 GOARCH=wasm go build -o main.wasm .
//
// and deployed with handler main.wasm. Each invocation runs it afresh: it
// reads the event JSON on stdin, writes its answer on stdout and its logs
// on stderr, and fails by exiting non-zero with the reason as the last
// line on stderr. Behind a function URL it greets the name in the query
// string; invoked directly it greets {"name": …}.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// urlRequest is the part of a function URL event (the API Gateway HTTP API
// v2 payload) this function reads.
type urlRequest struct {
	RequestContext struct {
		HTTP struct {
			Method string `json:"method"`
		} `json:"http"`
	} `json:"requestContext"`
	QueryStringParameters map[string]string `json:"queryStringParameters"`
}

type urlResponse struct {
	StatusCode int               `json:"statusCode"`
	Headers    map[string]string `json:"headers"`
	Body       string            `json:"body"`
}

func handle(event []byte) (any, error) {
	var url urlRequest
	if err := json.Unmarshal(event, &url); err == nil && url.RequestContext.HTTP.Method != "" {
		name := url.QueryStringParameters["name"]
		if name == "" {
			name = "world"
		}
		return urlResponse{
			StatusCode: 200,
			Headers:    map[string]string{"content-type": "text/plain"},
			Body:       fmt.Sprintf("hello, %s\n", name),
		}, nil
	}
	var in struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(event, &in); err != nil {
		return nil, fmt.Errorf("event is not an object with a name: %w", err)
	}
	if in.Name == "" {
		in.Name = "world"
	}
	fmt.Fprintf(os.Stderr, "greeting %s in %s\n", in.Name, os.Getenv("AWS_LAMBDA_FUNCTION_NAME"))
	return map[string]string{"greeting": "hello, " + in.Name}, nil
}

func main() {
	event, err := io.ReadAll(os.Stdin)
	if err == nil {
		var out any
		if out, err = handle(event); err == nil {
			err = json.NewEncoder(os.Stdout).Encode(out)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
