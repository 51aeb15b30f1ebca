// Command hello-wasm-go-reuse is hello-wasm-go for the wasm runtime's
// reuse mode, where one instance of the module serves invocation after
// invocation, so Go's runtime starts once rather than at every call. It
// is a WASI reactor, built and deployed with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o main.wasm .
//	wisp deploy . --name hello-reuse --runtime wasm --handler main.wasm --reuse
//
// The host runs _initialize once (Go's runtime and package init; main is
// not run), then for each invocation calls wisp_alloc for room for the
// event, writes the event there and calls wisp_handle, which answers
// with where the answer is. Setting the answer's error bit fails the
// invocation with the answer as its errorMessage. What it writes on
// stdout or stderr goes to the logs. Behind a function URL it greets the
// name in the query string; invoked directly it greets {"name": …}.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"unsafe"
)

// request is what this function reads of its event: a function URL event
// (the API Gateway HTTP API v2 payload) or {"name": …}, decoded at once.
type request struct {
	RequestContext struct {
		HTTP struct {
			Method string `json:"method"`
		} `json:"http"`
	} `json:"requestContext"`
	QueryStringParameters map[string]string `json:"queryStringParameters"`
	Name                  string            `json:"name"`
}

type urlResponse struct {
	StatusCode int               `json:"statusCode"`
	Headers    map[string]string `json:"headers"`
	Body       string            `json:"body"`
}

type greeting struct {
	Greeting string `json:"greeting"`
}

func handle(raw []byte) (any, error) {
	var ev request
	if err := json.Unmarshal(raw, &ev); err != nil {
		return nil, fmt.Errorf("event is not an object with a name: %w", err)
	}
	if ev.RequestContext.HTTP.Method != "" {
		name := ev.QueryStringParameters["name"]
		if name == "" {
			name = "world"
		}
		return urlResponse{
			StatusCode: 200,
			Headers:    map[string]string{"content-type": "text/plain"},
			Body:       fmt.Sprintf("hello, %s\n", name),
		}, nil
	}
	if ev.Name == "" {
		ev.Name = "world"
	}
	fmt.Fprintf(os.Stderr, "greeting %s in %s\n", ev.Name, os.Getenv("AWS_LAMBDA_FUNCTION_NAME"))
	return greeting{"hello, " + ev.Name}, nil
}

// main is not run in a reactor, but package main needs one.
func main() {}

// The guest's side of Wisp's reuse ABI.
var (
	event  []byte // the room wisp_alloc gave the host, reused while it is big enough
	answer []byte // the last answer, kept until the next call
)

// errorBit, set in wisp_handle's result, says the answer is an error.
const errorBit = 1 << 31

//go:wasmexport wisp_alloc
func wispAlloc(size uint32) uint32 {
	if uint32(cap(event)) < size {
		event = make([]byte, size)
	}
	event = event[:size]
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(event))))
}

// wispHandle handles the event the host wrote; ptr is the room wisp_alloc
// returned, so event already holds it. It returns the answer's address
// and length, with errorBit set for an error.
//
//go:wasmexport wisp_handle
func wispHandle(ptr, size uint32) uint64 {
	var flags uint64
	out, err := handle(event[:size])
	if err == nil {
		answer, err = json.Marshal(out)
	}
	if err != nil {
		answer, flags = []byte(err.Error()), errorBit
	}
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(answer))))<<32 | uint64(len(answer)) | flags
}
