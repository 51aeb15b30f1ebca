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
	q := url.Values{}
	if opt.Qualifier != "" {
		q.Set("Qualifier", opt.Qualifier)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		c.baseURL+"/2015-03-31/functions/"+url.PathEscape(name)+"/invocations?"+q.Encode(), bytes.NewReader(payload))
	if err != nil {
		return InvokeResult{}, fmt.Errorf("client: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if opt.Tail {
		req.Header.Set("X-Amz-Log-Type", "Tail")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return InvokeResult{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return InvokeResult{}, decodeError(resp)
	}
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
