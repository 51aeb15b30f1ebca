// Command hello-go is an AWS Lambda function written with aws-lambda-go,
// unchanged from what runs on AWS. Behind a function URL it greets the name
// in the query string; invoked directly it greets {"name": …}.
package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

func handle(ctx context.Context, raw json.RawMessage) (any, error) {
	var url events.LambdaFunctionURLRequest
	if err := json.Unmarshal(raw, &url); err == nil && url.RequestContext.HTTP.Method != "" {
		name := url.QueryStringParameters["name"]
		if name == "" {
			name = "world"
		}
		return events.LambdaFunctionURLResponse{
			StatusCode: 200,
			Headers:    map[string]string{"content-type": "text/plain"},
			Body:       fmt.Sprintf("hello, %s\n", name),
		}, nil
	}
	var in struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, fmt.Errorf("event is not an object with a name: %w", err)
	}
	if in.Name == "" {
		in.Name = "world"
	}
	lc, _ := lambdacontext.FromContext(ctx)
	fmt.Printf("greeting %s\n", in.Name)
	return map[string]string{"greeting": "hello, " + in.Name, "request_id": lc.AwsRequestID}, nil
}

func main() { lambda.Start(handle) }
