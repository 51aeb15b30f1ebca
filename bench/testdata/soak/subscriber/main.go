// Command subscriber is the soak's async subscriber (go run ./bench -soak
// 60s): an AWS Lambda function that posts each event it runs to the bench's
// recorder at RECORDER_URL, the bench's own account of what ran. A call the
// recorder does not take fails, so the node retries the event.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
)

func main() {
	recorder := os.Getenv("RECORDER_URL")
	lambda.Start(func(ctx context.Context, event json.RawMessage) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, recorder, bytes.NewReader(event))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return err
		}
		if resp.StatusCode != http.StatusNoContent {
			return fmt.Errorf("the recorder answered %d", resp.StatusCode)
		}
		return nil
	})
}
