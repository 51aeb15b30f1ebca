// Command gofn is a Lambda function built with aws-lambda-go for the
// process driver's tests. The event's op chooses what it does.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

type event struct {
	Op     string   `json:"op"`
	Msg    string   `json:"msg,omitempty"`
	Ms     int      `json:"ms,omitempty"`
	Code   int      `json:"code,omitempty"`
	Size   int      `json:"size,omitempty"`
	Stdout []string `json:"stdout,omitempty"`
	Stderr []string `json:"stderr,omitempty"`
	Path   string   `json:"path,omitempty"`
	Body   string   `json:"body,omitempty"`
}

// TeapotError is the function error the "error" op returns; aws-lambda-go
// reports its type name as the errorType.
type TeapotError struct{ Msg string }

func (e *TeapotError) Error() string { return e.Msg }

func handle(ctx context.Context, ev event) (any, error) {
	switch ev.Op {
	case "echo":
		return ev, nil
	case "error":
		return nil, &TeapotError{Msg: ev.Msg}
	case "sleep":
		time.Sleep(time.Duration(ev.Ms) * time.Millisecond)
		return "slept", nil
	case "exit":
		fmt.Fprintln(os.Stderr, "gofn: exiting")
		os.Exit(ev.Code)
	case "env":
		env := map[string]string{}
		for _, kv := range os.Environ() {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		cwd, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		env["cwd"] = cwd
		return env, nil
	case "log":
		for _, l := range ev.Stdout {
			fmt.Println(l)
		}
		for _, l := range ev.Stderr {
			fmt.Fprintln(os.Stderr, l)
		}
		return "logged", nil
	case "big":
		return strings.Repeat("x", ev.Size), nil
	case "pid":
		return os.Getpid(), nil
	case "spawn":
		// A child in the background, as a function might leave behind.
		cmd := exec.Command("sleep", "100")
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		return cmd.Process.Pid, nil
	case "context":
		lc, _ := lambdacontext.FromContext(ctx)
		deadline, _ := ctx.Deadline()
		return map[string]any{
			"requestId": lc.AwsRequestID,
			"arn":       lc.InvokedFunctionArn,
			"deadline":  deadline.UnixMilli(),
			"custom":    lc.ClientContext.Custom,
			"identity":  lc.Identity.CognitoIdentityID,
		}, nil
	case "post":
		// Talk to the Runtime API as a misbehaving runtime would.
		return post(ev.Path, ev.Body)
	}
	return nil, fmt.Errorf("unknown op %q", ev.Op)
}

func main() {
	fmt.Fprintln(os.Stderr, "gofn: init")
	lambda.Start(handle)
}

// post sends body to the Runtime API path (GET if body is empty) and
// returns the status code.
func post(path, body string) (int, error) {
	url := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + path
	var resp *http.Response
	var err error
	if body == "" {
		resp, err = http.Get(url)
	} else {
		resp, err = http.Post(url, "application/json", strings.NewReader(body))
	}
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
