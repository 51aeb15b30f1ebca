;; hello.wat is the smallest useful Wisp function for the wasm runtime: a
;; WASI preview 1 command, written by hand in WebAssembly text. It reads
;; the event on stdin to its end (and ignores it), then answers with a
;; fixed JSON document on stdout. Assemble and deploy it with
;;
;;   wat2wasm hello.wat -o main.wasm    # Debian/Ubuntu: apt-get install wabt
;;
;; and the handler main.wasm.
(module
  ;; fd_read(fd, iovs, iovs_len, nread) -> errno
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  ;; fd_write(fd, iovs, iovs_len, nwritten) -> errno
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))

  ;; One page (64 KiB): an iovec at 0, a byte count at 8, the answer at
  ;; 16, and a read buffer from 1024.
  (memory (export "memory") 1)
  (data (i32.const 16) "{\"greeting\":\"hello from wat\"}")

  (func (export "_start")
    ;; Read stdin until it ends (0 bytes read) or fails.
    (block $done
      (loop $read
        (i32.store (i32.const 0) (i32.const 1024)) ;; iovec.buf
        (i32.store (i32.const 4) (i32.const 4096)) ;; iovec.len
        (br_if $done
          (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
        (br_if $done (i32.eqz (i32.load (i32.const 8))))
        (br $read)))
    ;; Write the 29 bytes of the answer to stdout. Returning from _start
    ;; is exit status 0.
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 29))
    (drop
      (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
