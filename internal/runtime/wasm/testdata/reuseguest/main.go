// Command reuseguest is a test function for the wasm driver's reuse mode:
// a reactor whose event's mode says what it does. Its state lives as long
// as its module instance.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
	"unsafe"
)

// runs counts the calls this module instance has served.
var runs int

func init() {
	fmt.Fprintln(os.Stderr, "guest initialized")
	switch os.Getenv("GUEST_INIT") {
	case "panic":
		panic("init failed")
	case "exit":
		fmt.Fprintln(os.Stderr, "cannot start")
		os.Exit(4)
	case "spin":
		for {
			runs++
		}
	}
}

func main() {}

type request struct {
	Mode string `json:"mode"`
	MB   int    `json:"mb"` // for alloc
}

// handle answers an event; a non-nil error is sent as plain text.
func handle(raw []byte) ([]byte, error) {
	var ev request
	if err := json.Unmarshal(raw, &ev); err != nil {
		return nil, err
	}
	runs++
	switch ev.Mode {
	case "counter":
		return json.Marshal(runs)
	case "log":
		fmt.Println("to stdout")
		fmt.Fprintln(os.Stderr, "first line")
		fmt.Fprint(os.Stderr, "no newline at the end")
		return json.Marshal("logged")
	case "error":
		fmt.Fprintln(os.Stderr, "failing")
		return nil, fmt.Errorf("bad thing happened (run %d)", runs)
	case "errordoc":
		return nil, errDoc
	case "exit":
		fmt.Fprintln(os.Stderr, "exiting")
		os.Exit(3)
	case "panic":
		panic("boom")
	case "trap":
		// Far past the module's memory: the store traps.
		*(*byte)(unsafe.Pointer(uintptr(0xfffffff0))) = 1
	case "alloc":
		var keep [][]byte
		for range ev.MB {
			b := make([]byte, 1<<20)
			for i := 0; i < len(b); i += 4 << 10 {
				b[i] = 1 // touch every page
			}
			keep = append(keep, b)
		}
		return json.Marshal(len(keep))
	case "spin":
		for {
			runs++
		}
	case "sleep":
		time.Sleep(time.Hour)
	case "big":
		return []byte(`"` + strings.Repeat("x", 7<<20) + `"`), nil
	case "empty":
		return nil, nil
	}
	return nil, fmt.Errorf("unknown mode %q", ev.Mode)
}

// errDoc is an error the guest answers as Lambda's error document.
var errDoc = docError(`{"errorMessage":"no such user","errorType":"UserNotFound","stackTrace":["main.handle"]}`)

type docError string

func (e docError) Error() string { return string(e) }

// The reuse ABI.
var event, answer []byte

//go:wasmexport wisp_alloc
func wispAlloc(size uint32) uint32 {
	if uint32(cap(event)) < size {
		event = make([]byte, size)
	}
	event = event[:size]
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(event))))
}

//go:wasmexport wisp_handle
func wispHandle(ptr, size uint32) uint64 {
	var flags uint64
	out, err := handle(event[:size])
	answer = out
	if err != nil {
		answer, flags = []byte(err.Error()), 1<<31
	}
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(answer))))<<32 | uint64(len(answer)) | flags
}
