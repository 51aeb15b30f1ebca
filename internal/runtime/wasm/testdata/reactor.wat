;; reactor.wat is a reactor for reuse mode with no _initialize: it answers
;; its event back, unless the event's first byte asks it to break the ABI.
(module
  (memory (export "memory") 1)
  ;; Room for the event at 1024; for more than 60000 bytes, room past
  ;; the end of the memory.
  (func (export "wisp_alloc") (param $size i32) (result i32)
    (if (result i32) (i32.gt_u (local.get $size) (i32.const 60000))
      (then (i32.const 65000))
      (else (i32.const 1024))))
  (func $fail unreachable)
  (func (export "wisp_handle") (param $ptr i32) (param $len i32) (result i64)
    ;; "t": trap.
    (if (i32.eq (i32.load8_u (local.get $ptr)) (i32.const 116))
      (then (call $fail)))
    ;; "o": 100 bytes at 0xfff0000, far outside the memory.
    (if (i32.eq (i32.load8_u (local.get $ptr)) (i32.const 111))
      (then (return (i64.const 0x0fff000000000064))))
    ;; Else the event itself: ptr<<32 | len.
    (i64.or
      (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
      (i64.extend_i32_u (local.get $len)))))
