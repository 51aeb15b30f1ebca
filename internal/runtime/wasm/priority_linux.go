package wasm

import (
	goruntime "runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// guestNice is the nice value of a thread while it runs guest code past
// demoteAfter: a CPU
// weight of 110 against the node's 1024 (nice 0), about what a process
// function of 190 MB gets (see the sandbox's cpuShares), so that a looping
// guest yields the CPU to the node's own threads (its HTTP server, the
// Runtime API of process instances) when they want it. The lowest, 19,
// would starve wasm functions on a busy host.
const guestNice = 10

// canLower says whether this process may give a thread its priority back
// once lowered (CAP_SYS_NICE, which root has, or RLIMIT_NICE): without,
// guest code runs at the node's priority. It tries on a thread of its
// own, which ends, lowered, if it could not.
func canLower() bool {
	ok := make(chan bool, 1)
	go func() {
		goruntime.LockOSThread() // unlocked only if the priority came back
		tid := unix.Gettid()
		prio, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
		was := 20 - prio // the raw syscall answers 20 - nice
		if err != nil || was >= guestNice || unix.Setpriority(unix.PRIO_PROCESS, tid, guestNice) != nil {
			ok <- false
			return
		}
		if unix.Setpriority(unix.PRIO_PROCESS, tid, was) != nil {
			ok <- false
			return
		}
		goruntime.UnlockOSThread()
		ok <- true
	}()
	return <-ok
}

// demoteAfter is how long guest code runs at the node's priority before
// its thread gets guestNice: a short call (most are well under a
// millisecond) is not slowed by the node's own work, which would preempt
// it, and a looping one yields to the node from then on.
const demoteAfter = 10 * time.Millisecond

// runLowered runs f on the calling goroutine's thread, which gets
// guestNice if f runs past demoteAfter, and its own priority back after.
// Should that fail, the goroutine keeps the thread locked, so that it ends
// with the goroutine rather than going back to Go's pool at guestNice.
func runLowered(f func()) {
	goruntime.LockOSThread()
	tid := unix.Gettid()
	var (
		mu      sync.Mutex
		ended   bool // guarded by mu: f returned
		lowered bool // guarded by mu: the thread has guestNice
		was     int  // guarded by mu: its nice before
	)
	demote := time.AfterFunc(demoteAfter, func() {
		mu.Lock()
		defer mu.Unlock()
		if ended {
			return
		}
		// Another thread of this process may lower it.
		prio, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
		if err != nil || 20-prio >= guestNice { // the raw syscall answers 20 - nice
			return
		}
		if unix.Setpriority(unix.PRIO_PROCESS, tid, guestNice) == nil {
			lowered, was = true, 20-prio
		}
	})
	defer func() {
		demote.Stop()
		mu.Lock()
		ended = true
		restored := !lowered || unix.Setpriority(unix.PRIO_PROCESS, tid, was) == nil
		mu.Unlock()
		if restored {
			goruntime.UnlockOSThread()
		}
	}()
	f()
}
