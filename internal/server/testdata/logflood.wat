;; logflood.wat floods the node's logs from a wasm function: its event is a
;; number of milliseconds (the first digits of stdin) during which it
;; writes lines of 64 KiB to stderr as fast as the node takes them; then it
;; writes the line "after" and answers {"written":N}, N the lines of
;; 64 KiB it wrote. Assembled by the server tests with wabt's wat2wasm.
(module
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get"
    (func $clock_time_get (param i32 i64 i32) (result i32)))

  ;; An iovec at 0, a byte count at 8, the clock at 16, the answer around
  ;; 64 to 100, "after" at 128, stdin from 1024, the line from 65536.
  (memory (export "memory") 3)
  (data (i32.const 64) "{\"written\":")
  (data (i32.const 100) "}")
  (data (i32.const 128) "after\n")

  ;; now is the monotonic clock in nanoseconds.
  (func $now (result i64)
    (drop (call $clock_time_get (i32.const 1) (i64.const 1000) (i32.const 16)))
    (i64.load (i32.const 16)))

  ;; write writes len bytes at ptr to fd, all of them unless it fails.
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (block $done
      (loop $again
        (br_if $done (i32.le_s (local.get $len) (i32.const 0)))
        (i32.store (i32.const 0) (local.get $ptr))
        (i32.store (i32.const 4) (local.get $len))
        (br_if $done
          (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
        (local.set $ptr (i32.add (local.get $ptr) (i32.load (i32.const 8))))
        (local.set $len (i32.sub (local.get $len) (i32.load (i32.const 8))))
        (br $again))))

  (func (export "_start")
    (local $n i32) (local $i i32) (local $c i32) (local $ms i64) (local $end i64)
    (local $count i32) (local $p i32)
    ;; Read stdin, up to 4096 bytes.
    (block $eof
      (loop $read
        (i32.store (i32.const 0) (i32.add (i32.const 1024) (local.get $n)))
        (i32.store (i32.const 4) (i32.sub (i32.const 4096) (local.get $n)))
        (br_if $eof
          (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
        (br_if $eof (i32.eqz (i32.load (i32.const 8))))
        (local.set $n (i32.add (local.get $n) (i32.load (i32.const 8))))
        (br_if $eof (i32.ge_u (local.get $n) (i32.const 4096)))
        (br $read)))
    ;; The first run of digits is the milliseconds.
    (block $parsed
      (loop $scan
        (br_if $parsed (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $c (i32.load8_u (i32.add (i32.const 1024) (local.get $i))))
        (if (i32.and (i32.ge_u (local.get $c) (i32.const 48)) (i32.le_u (local.get $c) (i32.const 57)))
          (then
            (local.set $ms (i64.add (i64.mul (local.get $ms) (i64.const 10))
              (i64.extend_i32_u (i32.sub (local.get $c) (i32.const 48))))))
          (else
            (br_if $parsed (i64.ne (local.get $ms) (i64.const 0)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $scan)))
    ;; The line: 65535 x's and a newline.
    (local.set $i (i32.const 65536))
    (loop $fill
      (i32.store8 (local.get $i) (i32.const 120))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $fill (i32.lt_u (local.get $i) (i32.const 131071))))
    (i32.store8 (i32.const 131071) (i32.const 10))
    ;; Flood.
    (local.set $end (i64.add (call $now) (i64.mul (local.get $ms) (i64.const 1000000))))
    (block $stop
      (loop $flood
        (br_if $stop (i64.ge_u (call $now) (local.get $end)))
        (call $write (i32.const 2) (i32.const 65536) (i32.const 65536))
        (local.set $count (i32.add (local.get $count) (i32.const 1)))
        (br $flood)))
    (call $write (i32.const 2) (i32.const 128) (i32.const 6))
    ;; Answer {"written":N}: N's digits backwards, ending at 100.
    (local.set $p (i32.const 100))
    (loop $digits
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p) (i32.add (i32.const 48) (i32.rem_u (local.get $count) (i32.const 10))))
      (local.set $count (i32.div_u (local.get $count) (i32.const 10)))
      (br_if $digits (local.get $count)))
    (call $write (i32.const 1) (i32.const 64) (i32.const 11))
    (call $write (i32.const 1) (local.get $p) (i32.sub (i32.const 101) (local.get $p)))))
