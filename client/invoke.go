package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// InvokeOptions shape an Invoke.
type InvokeOptions struct {
	// Qualifier is a version number or an alias; empty means $LATEST.
	Qualifier string
	// Tail asks for the last 4 KB of the invocation's log.
	Tail bool
}

// InvokeResult is a finished invocation. A function that failed is a
// result too: FunctionError is set and Payload holds the error document.
type InvokeResult struct {
	Payload         []byte
	FunctionError   string
	ExecutedVersion string
	RequestID       string
	LogTail         []byte
}

// Invoke calls a function synchronously through the Lambda Invoke API.
func (c *Client) Invoke(ctx context.Context, name string, payload []byte, opt InvokeOptions) (InvokeResult, error) {
	h := http.Header{}
	if opt.Tail {
		h.Set("X-Amz-Log-Type", "Tail")
	}
	resp, err := c.invoke(ctx, name, payload, opt.Qualifier, h)
	if err != nil {
		return InvokeResult{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return InvokeResult{}, fmt.Errorf("client: reading the invocation's answer: %w", err)
	}
	res := InvokeResult{Payload: body, FunctionError: resp.Header.Get("X-Amz-Function-Error"),
		ExecutedVersion: resp.Header.Get("X-Amz-Executed-Version"), RequestID: resp.Header.Get("X-Amzn-RequestId")}
	if lr := resp.Header.Get("X-Amz-Log-Result"); lr != "" {
		if res.LogTail, err = base64.StdEncoding.DecodeString(lr); err != nil {
			return res, fmt.Errorf("client: X-Amz-Log-Result is not base64: %w", err)
		}
	}
	return res, nil
}

// InvokeAsync hands a function an event (Lambda's InvocationType Event)
// and returns its request id once the node has stored it: the function
// runs later, with its retries and destinations (Function.Async). A
// payload is at most 256 KB.
func (c *Client) InvokeAsync(ctx context.Context, name string, payload []byte, qualifier string) (requestID string, err error) {
	resp, err := c.invoke(ctx, name, payload, qualifier, http.Header{"X-Amz-Invocation-Type": {"Event"}})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return "", fmt.Errorf("client: reading the invocation's answer: %w", err)
	}
	requestID = resp.Header.Get("X-Amzn-RequestId")
	if resp.StatusCode != http.StatusAccepted || requestID == "" {
		// A node that ran the call synchronously would answer 200.
		return "", fmt.Errorf("client: an async invocation of %s was answered %d without a request id; the node may not take events", name, resp.StatusCode)
	}
	return requestID, nil
}

// invoke sends an invocation through the Lambda Invoke API, with the
// headers h that say how.
func (c *Client) invoke(ctx context.Context, name string, payload []byte, qualifier string, h http.Header) (*http.Response, error) {
	var q url.Values
	if qualifier != "" {
		q = url.Values{"Qualifier": {qualifier}}
	}
	return c.send(ctx, request{method: http.MethodPost, path: "/2015-03-31/functions/" + url.PathEscape(name) + "/invocations",
		query: q, header: h, body: bytes.NewReader(payload), size: int64(len(payload)), contentType: "application/json"})
}
