// Command guest is a test function for the wasm driver: the event's mode
// says what it does.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// runs counts the runs of this instance: a fresh instance answers 1.
var runs int

type event struct {
	Mode string `json:"mode"`
	MB   int    `json:"mb"` // for alloc
}

func main() {
	raw, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	var ev event
	if err := json.Unmarshal(raw, &ev); err != nil {
		fail(err)
	}
	runs++
	switch ev.Mode {
	case "echo":
		env := map[string]string{}
		for _, kv := range os.Environ() {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		cwd, _ := os.Getwd()
		data, readErr := os.ReadFile("data.txt")
		werr := os.WriteFile("/var/task/new.txt", []byte("x"), 0o644)
		var r [16]byte
		rand.Read(r[:])
		answer(map[string]any{
			"env": env, "args": os.Args, "cwd": cwd, "data": string(data), "readErr": errString(readErr),
			"writeErr": errString(werr), "unix": time.Now().Unix(), "rand": hex.EncodeToString(r[:]),
			"event": json.RawMessage(raw),
		})
	case "log":
		fmt.Fprintln(os.Stderr, "first line")
		fmt.Fprint(os.Stderr, "second line\nno newline at the end")
		answer("logged")
	case "counter":
		answer(runs)
	case "exit":
		fmt.Fprintln(os.Stderr, "something went wrong")
		fmt.Fprintln(os.Stderr, "bad thing happened")
		os.Exit(3)
	case "panic":
		panic("boom")
	case "alloc":
		var keep [][]byte
		for range ev.MB {
			b := make([]byte, 1<<20)
			for i := 0; i < len(b); i += 4 << 10 {
				b[i] = 1 // touch every page
			}
			keep = append(keep, b)
		}
		answer(len(keep))
	case "spin":
		for {
			runs++
		}
	case "sleep":
		time.Sleep(time.Hour)
	case "big":
		chunk := strings.Repeat("x", 1<<20)
		for range 7 {
			os.Stdout.WriteString(chunk)
		}
	case "empty":
	default:
		fail(fmt.Errorf("unknown mode %q", ev.Mode))
	}
}

func answer(v any) {
	if err := json.NewEncoder(os.Stdout).Encode(v); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
