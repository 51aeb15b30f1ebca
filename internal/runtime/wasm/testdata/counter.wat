;; counter.wat counts its runs in a global and in its memory, and answers
;; {"global":G,"memory":M}: a fresh instance answers 1 and 1.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $runs (mut i32) (i32.const 0))
  ;; The digits go at 26 and 37; the count in memory is kept at 100.
  (data (i32.const 16) "{\"global\":0,\"memory\":0}")
  (func (export "_start")
    (global.set $runs (i32.add (global.get $runs) (i32.const 1)))
    (i32.store (i32.const 100) (i32.add (i32.load (i32.const 100)) (i32.const 1)))
    (i32.store8 (i32.const 26) (i32.add (i32.const 48) (global.get $runs)))
    (i32.store8 (i32.const 37) (i32.add (i32.const 48) (i32.load (i32.const 100))))
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 23))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
